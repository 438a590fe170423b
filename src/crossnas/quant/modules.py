"""Static quantized layers: what ``extract`` builds and the PIM simulator replaces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.quant.functions import add_weight_noise, fake_quant_act, fake_quant_weight

CLIP_MOMENTUM = 0.1


def update_clip(clip: torch.Tensor, x: torch.Tensor, initialised: torch.Tensor, momentum: float = CLIP_MOMENTUM) -> None:
    """EMA update of an activation clip buffer from a batch (in place, no grad)."""
    with torch.no_grad():
        m = x.detach().abs().amax()
        if bool(initialised):
            clip.mul_(1 - momentum).add_(m * momentum)
        else:
            clip.copy_(m)
            initialised.fill_(True)


class _QuantMixin:
    w_bits: int | None
    a_bits: int | None
    signed_input: bool
    act_clip: torch.Tensor
    clip_initialised: torch.Tensor
    weight_noise: float = 0.0
    """Relative weight noise σ added to the fake-quantized weights in training-mode
    forwards (:func:`~crossnas.quant.functions.add_weight_noise`); a plain attribute,
    not saved. The training loop sets it for each step only."""
    weight_noise_abs: float = 0.0
    """State-independent weight noise σ (times the channel's ``max|w|``), as ``weight_noise``."""

    def _init_quant(self, w_bits: int | None, a_bits: int | None, signed_input: bool) -> None:
        self.w_bits = w_bits
        self.a_bits = a_bits
        self.signed_input = signed_input
        self.register_buffer("act_clip", torch.ones(()))  # type: ignore[attr-defined]
        self.register_buffer("clip_initialised", torch.zeros((), dtype=torch.bool))  # type: ignore[attr-defined]

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.a_bits is None:
            return x
        if self.training:  # type: ignore[attr-defined]
            update_clip(self.act_clip, x, self.clip_initialised)
        return fake_quant_act(x, self.a_bits, self.act_clip, self.signed_input)

    def _quant_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Fake-quantized weights, plus the device-like noise in training forwards (the
        simulator perturbs the programmed, i.e. quantized, weights)."""
        wq = fake_quant_weight(w, self.w_bits)
        if self.training and (self.weight_noise > 0 or self.weight_noise_abs > 0):  # type: ignore[attr-defined]
            wq = add_weight_noise(wq, self.weight_noise, self.weight_noise_abs)
        return wq

    def extra_repr(self) -> str:
        base = super().extra_repr()  # type: ignore[misc]
        return f"{base}, w_bits={self.w_bits}, a_bits={self.a_bits}, signed_input={self.signed_input}"


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized weights (per channel) and input."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
        *,
        w_bits: int | None = None,
        a_bits: int | None = None,
        signed_input: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_quant(w_bits, a_bits, signed_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self._quant_input(x)
        wq = self._quant_weight(self.weight)
        return F.conv2d(xq, wq, self.bias, self.stride, self.padding)


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` with fake-quantized weights (per output) and input."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        w_bits: int | None = None,
        a_bits: int | None = None,
        signed_input: bool = False,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_quant(w_bits, a_bits, signed_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self._quant_input(x)
        wq = self._quant_weight(self.weight)
        return F.linear(xq, wq, self.bias)
