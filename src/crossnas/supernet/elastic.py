"""Elastic layers: one max-size weight, output-channel prefix slicing, input width from x.

The active configuration is passed to ``forward`` explicitly; the layers hold no
"current architecture" state. ``_Mode`` says what a forward may update.

Activation clips: every elastic conv/linear keeps a clip buffer of shape ``(2,)``,
index 0 for an unsigned (post-ReLU) input and index 1 for a signed input (the network
input, seen by the first non-skip block). Clips do not depend on the bit-width (the
quantization convention derives the step from clip and bits), so one value per
(layer, block, conv, signedness) is kept: an EMA of the batch max ``|x|`` over the
training paths that used it, re-estimated for one path by
:meth:`crossnas.supernet.Supernet.recalibrate`.

Epitomes (EPIM): a conv run with wrap factor ``m > 1`` uses as its epitome the first
``E_out x E_in`` channels of the shared weight (``E_out = ceil(out / out_wrap)``,
``E_in = ceil(in / in_wrap)``, wraps from :func:`crossnas.space.arch.epitome_wraps`), the
same prefix slice a narrower dense width would use, and applies it in the chunk-sum form
(:func:`crossnas.quant.epitome_conv2d`); its weights are quantized per epitome output
channel. So a dense path and an epitome path of one block share their leading weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.quant import (
    add_weight_noise,
    epitome_channels,
    epitome_conv2d,
    fake_quant_act,
    fake_quant_weight,
    update_clip,
)
from crossnas.quant.modules import CLIP_MOMENTUM
from crossnas.space.arch import epitome_wraps


@dataclass(frozen=True)
class _Mode:
    """What one supernet forward does besides computing outputs."""

    bn_batch_stats: bool
    """Normalise with batch statistics and update the running ones."""
    bn_momentum: float
    update_clip: bool
    clip_momentum: float
    dropout: bool
    noise: float
    """Relative weight noise σ (0 = none), std ``σ·|w|``."""
    noise_abs: float = 0.0
    """State-independent weight noise σ (0 = none), std ``σ·max|w|`` per output channel.
    Both are added to the fake-quantized weights (:func:`crossnas.quant.add_weight_noise`)."""


EVAL_MODE = _Mode(False, 0.1, False, CLIP_MOMENTUM, False, 0.0)


def _buffer(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>``, a tensor (buffer or parameter) the caller knows is there."""
    return cast(torch.Tensor, getattr(module, name))


class ElasticConv2d(nn.Module):
    """A conv whose active weight is ``weight[:out, :in]`` (no bias)."""

    is_elastic_conv = True
    act_clip: torch.Tensor  # buffers (registered in __init__)
    clip_initialised: torch.Tensor

    def __init__(self, in_max: int, out_max: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_max, in_max, kernel_size, kernel_size))
        self.padding = padding
        self.register_buffer("act_clip", torch.ones(2))
        self.register_buffer("clip_initialised", torch.zeros(2, dtype=torch.bool))

    def forward(
        self, x: torch.Tensor, out: int, w_bits: int | None, a_bits: int | None, signed: bool, mode: _Mode,
        epitome: int = 1, epitome_out: int | None = None,
    ) -> torch.Tensor:
        """Convolves ``x`` (``(B, in, H, W)``) with the first ``out`` filters, or, for
        ``epitome = m > 1``, with the epitome of the first ``E_out`` filters' first ``E_in``
        inputs wrapped onto ``out`` outputs (module docstring; ``epitome_out``: the output
        wrap when it is not ``m``)."""
        c_in = x.shape[1]
        m_out, m_in = epitome_wraps(epitome, c_in, out, epitome_out)
        wrapped = (m_out, m_in) != (1, 1)
        if wrapped:
            w = self.weight[: epitome_channels(out, m_out), : epitome_channels(c_in, m_in)]
        else:
            w = self.weight[:out, :c_in]
        if a_bits is not None:
            i = int(signed)
            clip = self.act_clip[i]
            if mode.update_clip:
                update_clip(clip, x, self.clip_initialised[i], mode.clip_momentum)
            x = fake_quant_act(x, a_bits, clip, signed)
        if w_bits is not None:
            w = fake_quant_weight(w, w_bits)
        if mode.noise > 0 or mode.noise_abs > 0:
            w = add_weight_noise(w, mode.noise, mode.noise_abs)
        if wrapped:
            return epitome_conv2d(x, w, out, 1, self.padding)
        return F.conv2d(x, w, None, 1, self.padding)

    def copy_to(self, dst: nn.Conv2d, signed: bool) -> None:
        """Copies the active slice (``dst``'s weight shape: the epitome's for an
        :class:`~crossnas.quant.EpitomeConv2d`) and the clip into a static conv."""
        with torch.no_grad():
            o, i = dst.weight.shape[:2]
            dst.weight.copy_(self.weight[:o, :i])
            if hasattr(dst, "act_clip"):
                _buffer(dst, "act_clip").copy_(self.act_clip[int(signed)])
                _buffer(dst, "clip_initialised").copy_(self.clip_initialised[int(signed)])


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm over the first ``C`` channels (``C`` read from x), sliced running stats."""

    is_elastic_bn = True
    running_mean: torch.Tensor  # buffers (registered in __init__)
    running_var: torch.Tensor

    def __init__(self, c_max: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c_max))
        self.bias = nn.Parameter(torch.zeros(c_max))
        self.register_buffer("running_mean", torch.zeros(c_max))
        self.register_buffer("running_var", torch.ones(c_max))

    def forward(self, x: torch.Tensor, mode: _Mode) -> torch.Tensor:
        c = x.shape[1]
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
            mode.bn_batch_stats, mode.bn_momentum, self.eps,
        )

    def copy_to(self, dst: nn.BatchNorm2d) -> None:
        """Copies the active slice into a static ``BatchNorm2d``."""
        c = dst.num_features
        with torch.no_grad():
            dst.weight.copy_(self.weight[:c])
            dst.bias.copy_(self.bias[:c])
            _buffer(dst, "running_mean").copy_(self.running_mean[:c])
            _buffer(dst, "running_var").copy_(self.running_var[:c])
        dst.eps = self.eps


class ElasticLinear(nn.Module):
    """A linear layer whose active weight is ``weight[:, :in]`` (``in`` read from x)."""

    is_elastic_linear = True
    act_clip: torch.Tensor  # buffers (registered in __init__)
    clip_initialised: torch.Tensor

    def __init__(self, in_max: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_max))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("act_clip", torch.ones(2))
        self.register_buffer("clip_initialised", torch.zeros(2, dtype=torch.bool))

    def forward(self, x: torch.Tensor, w_bits: int | None, a_bits: int | None, mode: _Mode,
                columns: torch.Tensor | None = None) -> torch.Tensor:
        """``columns``: the input features' weight columns (default: the first ``x.shape[1]``)."""
        w = self._active(x.shape[1], columns)
        if a_bits is not None:
            clip = self.act_clip[0]
            if mode.update_clip:
                update_clip(clip, x, self.clip_initialised[0], mode.clip_momentum)
            x = fake_quant_act(x, a_bits, clip, False)
        if w_bits is not None:
            w = fake_quant_weight(w, w_bits)
        if mode.noise > 0 or mode.noise_abs > 0:
            w = add_weight_noise(w, mode.noise, mode.noise_abs)
        return F.linear(x, w, self.bias)

    def _active(self, n_in: int, columns: torch.Tensor | None) -> torch.Tensor:
        """The weight a path uses: its ``columns``, else the first ``n_in`` input features."""
        return self.weight[:, columns] if columns is not None else self.weight[:, :n_in]

    def copy_to(self, dst: nn.Linear, columns: torch.Tensor | None = None) -> None:
        """Copies the active weight (``columns`` of the input features, else the first
        ``dst.in_features``), bias and clip into ``dst``."""
        with torch.no_grad():
            dst.weight.copy_(self._active(dst.in_features, columns))
            dst.bias.copy_(self.bias)
            if hasattr(dst, "act_clip"):
                _buffer(dst, "act_clip").copy_(self.act_clip[0])
                _buffer(dst, "clip_initialised").copy_(self.clip_initialised[0])
