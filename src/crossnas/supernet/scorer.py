"""Scoring many subnets quickly: BN/clip recalibration, then validation accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crossnas.data.bundle import DataBundle
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec
from crossnas.supernet.network import Supernet
from crossnas.supernet.static import StaticNet


class SubnetScorer:
    """Scores subnets of a trained supernet by inherited weights.

    For each candidate: the supernet's trained buffers (BN running statistics, activation
    clips) are restored, the candidate's BN statistics and clips are re-estimated on
    ``bn_batches`` fixed training batches (:meth:`Supernet.recalibrate`), then its
    accuracy on the whole validation split is measured in eval mode. The data is moved
    to the device and cut into batches once, at construction, and the trained buffers
    are snapshotted once, so a score costs ``bn_batches + ceil(n_val / eval_batch_size)``
    forward passes and no allocation beyond activations. Scores do not depend on the
    order of calls. After :meth:`score`, the supernet keeps that candidate's recalibrated
    statistics, so ``net.extract(spec)`` right after gives the scored model (or use
    :meth:`extract`).

    Args:
        net: the trained supernet (its device is used unless ``device`` is given).
        data: the dataset bundle (training split for recalibration, validation for accuracy).
        bn_batches: number of training batches for recalibration.
        batch_size: recalibration batch size.
        eval_batch_size: validation batch size.
        device: where to score; ``None`` = the supernet's device. The supernet is moved.
        seed: picks the (fixed) recalibration images.
        channels_last: keep the batches NHWC (faster convolutions on CPU and GPU).
    """

    def __init__(
        self,
        net: Supernet,
        data: DataBundle,
        *,
        bn_batches: int = 8,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        device: str | torch.device | None = None,
        seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        if bn_batches < 1 or batch_size < 1 or eval_batch_size < 1:
            raise CrossnasError("scorer: bn_batches, batch_size and eval_batch_size must be >= 1")
        dev = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(dev)
        self.device = dev
        self.input_hw = data.input_hw
        g = torch.Generator().manual_seed(seed)
        n = len(data.train_y)
        idx = torch.randperm(n, generator=g)
        if n >= bn_batches * batch_size:
            idx = idx[: bn_batches * batch_size]
        # Recalibration batches: fixed, on the device, cut once.
        fmt = torch.channels_last if channels_last and data.train_x.dim() == 4 else torch.contiguous_format
        xs = data.train_x[idx].to(dev)
        self._bn_batches = [
            b.contiguous(memory_format=fmt) for b in torch.split(xs, batch_size) if len(b) > 1
        ][:bn_batches]
        self._val = [
            (xb.to(dev).contiguous(memory_format=fmt), yb.to(dev))
            for xb, yb in zip(torch.split(data.val_x, eval_batch_size), torch.split(data.val_y, eval_batch_size), strict=True)
        ]
        self._n_val = len(data.val_y)
        self._snapshot = {k: v.detach().clone() for k, v in net.named_buffers()}
        self._buffers = dict(net.named_buffers())

    def refresh(self) -> None:
        """Takes a new snapshot of the supernet's buffers (after more training)."""
        with torch.no_grad():
            for k, v in self._snapshot.items():
                v.copy_(self._buffers[k])

    def restore(self) -> None:
        """Puts back the supernet's trained BN statistics and clips (in place)."""
        with torch.no_grad():
            for k, v in self._snapshot.items():
                self._buffers[k].copy_(v)

    def _prepare(self, spec: ArchSpec) -> None:
        spec.validate(self.net.space, self.input_hw)
        self.restore()
        self.net.recalibrate(spec, self._bn_batches)
        self.net.eval()

    @torch.no_grad()
    def score(self, spec: ArchSpec) -> float:
        """Validation accuracy (0..1) of ``spec`` with inherited weights.

        Raises:
            CrossnasError: ``spec`` is not valid for the supernet's space and input size.
        """
        was_training = self.net.training
        self._prepare(spec)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for xb, yb in self._val:
            correct += (self.net(xb, spec).argmax(1) == yb).sum()
        self.net.train(was_training)
        return float(correct.item()) / max(self._n_val, 1)

    def score_many(self, specs: Sequence[ArchSpec]) -> list[float]:
        """:meth:`score` of each spec, in order."""
        return [self.score(s) for s in specs]

    def extract(self, spec: ArchSpec) -> StaticNet:
        """The recalibrated static model of ``spec`` (eval mode)."""
        was_training = self.net.training
        self._prepare(spec)
        out = self.net.extract(spec)
        self.net.train(was_training)
        return out
