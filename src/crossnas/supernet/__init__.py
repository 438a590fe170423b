"""The weight-sharing supernet, static subnets, scoring and the model directory.

* :class:`Supernet` — every architecture of a space; ``net(x, spec)`` runs one path.
* :meth:`Supernet.extract` / :func:`build_static` — one architecture as a plain
  :class:`StaticNet` of ``QuantConv2d``/``QuantLinear`` + BN/ReLU/pool/dropout.
* :class:`SubnetScorer` — BN/clip recalibration + validation accuracy of many subnets.
* :mod:`crossnas.supernet.modeldir` — ``save_model_dir``/``load_model_dir``.
"""

from __future__ import annotations

from crossnas.supernet.network import Supernet
from crossnas.supernet.scorer import SubnetScorer
from crossnas.supernet.static import ResidualBlock, StaticNet, VGGBlock, build_static

__all__ = ["ResidualBlock", "StaticNet", "SubnetScorer", "Supernet", "VGGBlock", "build_static"]
