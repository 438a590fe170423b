"""Fake quantization: integer grid, STE gradients, clip calibration."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.quant import (
    QuantConv2d,
    QuantLinear,
    act_qmax,
    fake_quant_act,
    fake_quant_weight,
    quantize_act_int,
    quantize_weight_int,
    weight_qmax,
)
from crossnas.quant.functions import act_step, weight_step


@given(bits=st.integers(2, 12), seed=st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_weight_quant_is_integer_times_step(bits: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 3, 3, 3, generator=g)
    w_int, step = quantize_weight_int(w, bits)
    assert torch.equal(w_int, torch.round(w_int))
    assert w_int.abs().max() <= weight_qmax(bits)
    # every channel uses its full range
    assert torch.equal(w_int.abs().amax(dim=(1, 2, 3)), torch.full((5,), float(weight_qmax(bits))))
    assert torch.allclose(fake_quant_weight(w, bits), w_int * step)
    assert (fake_quant_weight(w, bits) - w).abs().max() <= step.max() / 2 + 1e-6


@given(bits=st.integers(2, 12), signed=st.booleans(), seed=st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_act_quant_range_and_consistency(bits: int, signed: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, generator=g) * 2
    clip = torch.tensor(1.5)
    x_int, step = quantize_act_int(x, bits, clip, signed)
    q = act_qmax(bits, signed)
    assert x_int.max() <= q and x_int.min() >= (-q if signed else 0)
    assert torch.allclose(fake_quant_act(x, bits, clip, signed), x_int * step)


def test_more_bits_never_increase_weight_error() -> None:
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    errs = [(fake_quant_weight(w, b) - w).abs().mean().item() for b in range(2, 12)]
    assert all(a >= b for a, b in zip(errs, errs[1:], strict=False))


def test_ste_passes_gradient_inside_range_only() -> None:
    x = torch.tensor([-1.0, 0.5, 3.0], requires_grad=True)
    fake_quant_act(x, 4, torch.tensor(2.0), signed=False).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_quant_layers_calibrate_clip_in_train_and_freeze_in_eval() -> None:
    conv = QuantConv2d(2, 3, 3, padding=1, w_bits=5, a_bits=5)
    x = torch.rand(4, 2, 6, 6) * 3
    conv.train()
    conv(x)
    assert torch.isclose(conv.act_clip, x.abs().max())
    conv.eval()
    before = conv.act_clip.clone()
    conv(x * 10)
    assert torch.equal(conv.act_clip, before)
    lin = QuantLinear(4, 2, w_bits=None, a_bits=None)
    xl = torch.randn(3, 4)
    assert torch.allclose(lin(xl), torch.nn.functional.linear(xl, lin.weight, lin.bias))


def _reference_fake_quant(x: torch.Tensor, step: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The textbook composition: clamp, then round with a straight-through gradient."""
    y = torch.clamp(x / step, lo, hi)
    return (y + (torch.round(y) - y).detach()) * step


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), bits=st.integers(2, 9), signed=st.booleans())
def test_fused_fake_quant_equals_the_textbook_composition(seed: int, bits: int, signed: bool) -> None:
    """One autograd node, same values (bit for bit) and same gradients as clamp + round-STE."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(64, generator=g) * 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    clip = torch.tensor(1.5)
    q = act_qmax(bits, signed)
    out = fake_quant_act(x, bits, clip, signed)
    ref = _reference_fake_quant(x_ref, act_step(clip, bits, signed), -q if signed else 0, q)
    assert torch.equal(out, ref)
    w = torch.randn(8, 3, 3, 3, generator=g, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    wq = fake_quant_weight(w, bits)
    step = weight_step(w_ref, bits).detach()
    wqmax = weight_qmax(bits)
    r = w_ref / step  # weights: round with a straight-through gradient, then clamp
    w_ref_q = torch.clamp(r + (torch.round(r) - r).detach(), -wqmax, wqmax) * step
    assert torch.equal(wq, w_ref_q)
    up = torch.randn(64, generator=g)
    (out * up).sum().backward()
    (ref * up).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=1e-6, atol=0)
    wup = torch.randn(8, 3, 3, 3, generator=g)
    (wq * wup).sum().backward()
    (w_ref_q * wup).sum().backward()
    assert torch.allclose(w.grad, w_ref.grad, rtol=1e-6, atol=0)
