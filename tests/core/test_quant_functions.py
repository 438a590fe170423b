"""Fake quantization: integer grid, STE gradients, clip calibration."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.quant import (
    QuantConv2d,
    QuantLinear,
    act_qmax,
    add_weight_noise,
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


# ---- device-like weight noise (noise-aware training) ------------------------------------------


def _noise_weights() -> torch.Tensor:
    """4 output channels of very different scales, zeros included (state-independent noise
    must reach them, relative noise must not)."""
    w = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    w[:, 0, 0, 0] = 0.0
    return w * torch.tensor([1.0, 10.0, 0.1, 3.0]).view(4, 1, 1, 1)


def _noise_draws(w: torch.Tensor, rel: float, ab: float, n: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.stack([add_weight_noise(w, rel, ab, generator=g) - w for _ in range(n)])


def test_weight_noise_relative_std_is_sigma_times_abs_w() -> None:
    w = _noise_weights()
    d = _noise_draws(w, 0.1, 0.0)
    nz = w != 0
    assert torch.all(d[:, ~nz] == 0)  # relative: a zero weight (cell at level 0) stays 0
    ratio = d.std(dim=0)[nz] / (0.1 * w.abs()[nz])  # per element, over 400 draws
    assert abs(ratio.mean().item() - 1) < 0.02 and ratio.min() > 0.8 and ratio.max() < 1.2
    assert abs((d[:, nz] / (0.1 * w.abs()[nz])).mean().item()) < 0.01  # zero-mean


def test_weight_noise_absolute_std_is_sigma_times_channel_max() -> None:
    w = _noise_weights()
    d = _noise_draws(w, 0.0, 0.05)
    amax = w.abs().amax(dim=(1, 2, 3))
    per_channel = d.transpose(0, 1).reshape(4, -1).std(dim=1)
    assert torch.allclose(per_channel, 0.05 * amax, rtol=0.02)
    # state-independent: the same std for the zero weights as for the largest ones
    assert torch.allclose(d[:, :, 0, 0, 0].std(dim=0), 0.05 * amax, rtol=0.15)


def test_weight_noise_parts_add_in_variance() -> None:
    w = _noise_weights()
    d = _noise_draws(w, 0.08, 0.03)
    amax = w.abs().amax(dim=(1, 2, 3), keepdim=True)
    z = d / torch.sqrt((0.08 * w) ** 2 + (0.03 * amax) ** 2)
    assert abs(z.std().item() - 1) < 0.01 and abs(z.mean().item()) < 0.01


def test_relative_weight_noise_never_flips_a_sign() -> None:
    # the simulator clamps a perturbed conductance at 0; the relative factor likewise
    w = _noise_weights()
    d = _noise_draws(w, 1.0, 0.0, n=50)
    noisy = w + d
    assert torch.all(noisy * w >= 0)
    assert (noisy == 0).float().mean() > 0.1  # the clamp binds for ~16 % of draws at σ = 1


def test_zero_weight_noise_is_exact_identity() -> None:
    w = _noise_weights().requires_grad_(True)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert add_weight_noise(w, 0.0, 0.0, generator=g) is w
    assert torch.equal(g.get_state(), state)  # nothing drawn
    lin = QuantLinear(6, 3, w_bits=5, a_bits=5).train()
    x = torch.rand(8, 6)
    ref = QuantLinear(6, 3, w_bits=5, a_bits=5).train()
    ref.load_state_dict(lin.state_dict())
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    assert torch.equal(lin(x), ref(x)) and torch.equal(torch.get_rng_state(), rng)


def test_weight_noise_is_deterministic_for_a_seed() -> None:
    w = _noise_weights()

    def draw(seed: int) -> torch.Tensor:
        return add_weight_noise(w, 0.02, 0.01, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    torch.manual_seed(7)
    a = add_weight_noise(w, 0.02, 0.01)  # torch's global RNG (what the training loops seed)
    torch.manual_seed(7)
    assert torch.equal(a, add_weight_noise(w, 0.02, 0.01))


def test_weight_noise_gradient_is_straight_through() -> None:
    w = _noise_weights().requires_grad_(True)
    c = torch.randn(w.shape, generator=torch.Generator().manual_seed(2))
    (add_weight_noise(w, 0.3, 0.1) * c).sum().backward()
    assert w.grad is not None and torch.equal(w.grad, c)
    # in a layer: loss linear in the weights, so the gradient is the noise-free one
    x, cy = torch.rand(16, 6), torch.randn(16, 3)
    grads = []
    for noise in (0.0, 0.3):
        lin = QuantLinear(6, 3, w_bits=5, a_bits=None).train()
        with torch.no_grad():
            lin.weight.copy_(torch.linspace(-1, 1, 18).view(3, 6))
        lin.weight_noise, lin.weight_noise_abs = noise, noise / 2
        (lin(x) * cy).sum().backward()
        grads.append(lin.weight.grad)
    assert torch.allclose(grads[0], grads[1])


def test_quant_layers_add_weight_noise_in_training_only() -> None:
    x = torch.rand(4, 2, 6, 6)
    conv = QuantConv2d(2, 3, 3, padding=1, w_bits=7, a_bits=None)
    clean = QuantConv2d(2, 3, 3, padding=1, w_bits=7, a_bits=None)
    clean.load_state_dict(conv.state_dict())
    conv.weight_noise, conv.weight_noise_abs = 0.05, 0.02
    conv.eval(), clean.eval()
    assert torch.equal(conv(x), clean(x))
    conv.train(), clean.train()
    assert not torch.allclose(conv(x), clean(x))
    # the noise sits on the quantized weights, as the simulator's variation does (noise
    # before the quantizer would be mostly rounded away and would move the step)
    torch.manual_seed(0)
    y = conv(x)
    torch.manual_seed(0)
    wq = add_weight_noise(fake_quant_weight(conv.weight, 7), 0.05, 0.02)
    assert torch.equal(y, torch.nn.functional.conv2d(x, wq, None, 1, 1))
