"""Stateless quantization functions (tensors in, tensors out)."""

from __future__ import annotations

import torch

_EPS = 1e-8


def weight_qmax(bits: int) -> int:
    """Largest weight integer magnitude for signed ``bits``: ``2**(bits-1) - 1``."""
    return (1 << (bits - 1)) - 1


def act_qmax(bits: int, signed: bool) -> int:
    """Largest activation integer: ``2**bits - 1`` unsigned, ``2**(bits-1) - 1`` signed."""
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def weight_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel step, shape ``(C_out, 1, ...)`` broadcastable to ``w``."""
    dims = tuple(range(1, w.dim()))
    amax = w.detach().abs().amax(dim=dims, keepdim=True) if dims else w.detach().abs()
    return amax.clamp_min(_EPS) / weight_qmax(bits)


def quantize_weight_int(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights and their per-channel step (``w ≈ w_int * step``).

    Returns:
        ``(w_int, step)``: ``w_int`` float tensor of integers, shape of ``w``;
        ``step`` shape ``(C_out, 1, ...)``.
    """
    step = weight_step(w, bits)
    q = weight_qmax(bits)
    return torch.clamp(torch.round(w / step), -q, q), step


class _FakeQuantWeight(torch.autograd.Function):
    """``round(w / step) * step`` forward, identity backward (the straight-through
    estimator; the clamp to ``±qmax`` never binds because ``step = max|w| / qmax``).
    One graph node instead of seven: the ops are cheap, their dispatch is not, on the
    small layers of digits-scale training."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, bits: int) -> torch.Tensor:  # type: ignore[override]
        q, step = weight_qmax(bits), weight_step(w, bits)
        return torch.clamp(torch.round(w / step), -q, q).mul_(step)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def fake_quant_weight(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Quantize-dequantize ``w`` with STE gradients; ``bits=None`` returns ``w``."""
    if bits is None:
        return w
    return _FakeQuantWeight.apply(w, bits)


def act_step(clip: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    """Activation step for a clip value (scalar tensor)."""
    return clip.clamp_min(_EPS) / act_qmax(bits, signed)


def quantize_act_int(
    x: torch.Tensor, bits: int, clip: torch.Tensor, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer activations and their step (``x ≈ x_int * step``)."""
    step = act_step(clip, bits, signed)
    q = act_qmax(bits, signed)
    lo = -q if signed else 0
    return torch.clamp(torch.round(x / step), lo, q), step


class _FakeQuantAct(torch.autograd.Function):
    """``round(clamp(x / step, lo, hi)) * step`` forward; backward passes the gradient
    where ``lo <= x / step <= hi`` (the clamp's own rule, bounds included) and zeroes it
    outside (the STE through the rounding)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: torch.Tensor, lo: int, hi: int) -> torch.Tensor:  # type: ignore[override]
        y = x / step
        ctx.save_for_backward((y >= lo) & (y <= hi))
        return torch.round(y.clamp_(lo, hi)).mul_(step)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quant_act(x: torch.Tensor, bits: int | None, clip: torch.Tensor, signed: bool) -> torch.Tensor:
    """Quantize-dequantize activations with STE (gradient passes inside the clip range)."""
    if bits is None:
        return x
    step = act_step(clip, bits, signed).detach()
    q = act_qmax(bits, signed)
    return _FakeQuantAct.apply(x, step, -q if signed else 0, q)


def add_weight_noise(
    w: torch.Tensor,
    sigma_rel: float,
    sigma_abs: float = 0.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian weight noise drawn like the device model (training only).

    ``w + w * max(sigma_rel * N1, -1) + sigma_abs * max|w| * N2`` with independent
    standard normals ``N1``, ``N2`` per element and ``max|w|`` over each output channel
    (the quantizer's full scale, :func:`weight_step`):

    * **relative** part, std ``sigma_rel * |w|``: the PIM simulator's conductance
      variation (``device.variation_pct``) is ``g * (1 + sigma * N(0, 1))`` on each cell,
      clamped at 0; here the factor ``1 + sigma_rel * N1`` is likewise clamped at 0, so
      it never flips a weight's sign;
    * **state-independent** part, std ``sigma_abs * max|w|``: noise relative to the
      largest weight, as programming/read noise relative to ``G_max`` acts on a channel
      whose largest weight maps to ``G_max``.

    The noise is a detached additive perturbation: the gradient with respect to ``w`` is
    the gradient at the noisy weights, passed through unchanged (straight-through, as
    the device noise is exogenous). Draws, in this order: ``N1`` (when ``sigma_rel > 0``),
    then ``N2`` (when ``sigma_abs > 0``), from ``generator`` (torch's global RNG when
    ``None``). ``sigma_rel = sigma_abs = 0`` returns ``w`` itself, drawing nothing.
    """
    if sigma_rel < 0 or sigma_abs < 0:
        raise ValueError(f"weight noise must be >= 0, got sigma_rel={sigma_rel}, sigma_abs={sigma_abs}")
    if sigma_rel == 0 and sigma_abs == 0:
        return w
    with torch.no_grad():
        wd = w.detach()
        delta = torch.zeros_like(wd)
        if sigma_rel > 0:
            n1 = torch.randn(wd.shape, device=wd.device, dtype=wd.dtype, generator=generator)
            delta.addcmul_(wd, n1.mul_(sigma_rel).clamp_(min=-1.0))
        if sigma_abs > 0:
            dims = tuple(range(1, wd.dim()))
            amax = wd.abs().amax(dim=dims, keepdim=True) if dims else wd.abs()
            n2 = torch.randn(wd.shape, device=wd.device, dtype=wd.dtype, generator=generator)
            delta.addcmul_(amax.expand_as(wd), n2, value=sigma_abs)
    return w + delta
