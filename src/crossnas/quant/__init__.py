"""Fake quantization with a straight-through estimator; no hardware knowledge.

Conventions (shared by the supernet, the static models and the PIM simulator, which
must reproduce these numbers exactly):

* **Weights**: signed, symmetric, per output channel. ``step = max|w| / (2**(b-1) - 1)``
  over each output channel; ``w_int = round(w / step)`` in ``[-(2**(b-1)-1), 2**(b-1)-1]``.
* **Activations** (the input of every conv/linear): a per-layer clip value ``clip``
  (calibrated: an exponential moving average of the batch maximum of ``|x|`` during
  training, frozen in eval). Unsigned inputs (after ReLU) use
  ``step = clip / (2**b - 1)`` and ``x_int = round(clamp(x, 0, clip) / step)``; signed
  inputs (the network input) use ``step = clip / (2**(b-1) - 1)`` and a symmetric clamp.
* The quantized product is ``step_x * step_w[c] * (x_int @ w_int)``: integers times scales.
* **Epitomes** (:mod:`crossnas.quant.epitome`): the stored epitome is quantized per epitome
  output channel, a scale shared by every logical channel wrapped onto that column.
"""

from __future__ import annotations

from crossnas.quant.epitome import (
    EpitomeConv2d,
    densify,
    epitome_channels,
    epitome_conv2d,
    expand_channels,
    expand_epitome,
    fold_channels,
    load_dense_state,
    project_epitome,
)
from crossnas.quant.functions import (
    act_qmax,
    add_weight_noise,
    fake_quant_act,
    fake_quant_weight,
    quantize_act_int,
    quantize_weight_int,
    weight_qmax,
)
from crossnas.quant.modules import QuantConv2d, QuantLinear, update_clip

__all__ = [
    "EpitomeConv2d",
    "QuantConv2d",
    "QuantLinear",
    "act_qmax",
    "add_weight_noise",
    "densify",
    "epitome_channels",
    "epitome_conv2d",
    "expand_channels",
    "expand_epitome",
    "fake_quant_act",
    "fake_quant_weight",
    "fold_channels",
    "load_dense_state",
    "project_epitome",
    "quantize_act_int",
    "quantize_weight_int",
    "update_clip",
    "weight_qmax",
]
