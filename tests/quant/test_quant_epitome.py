"""Epitome convolution: the chunk-sum form equals the expanded kernel, gradients
accumulate through the wrap, quantization scales are shared by wrapped copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.quant import (
    EpitomeConv2d,
    QuantConv2d,
    densify,
    epitome_channels,
    epitome_conv2d,
    expand_channels,
    expand_epitome,
    fake_quant_weight,
    fold_channels,
    load_dense_state,
    project_epitome,
    quantize_weight_int,
)


@st.composite
def layers(draw: st.DrawFn) -> tuple[int, int, int, int, int, int, int]:
    """``(c_in, c_out, m_in, m_out, k, stride, padding)``; partial chunks included."""
    c_in, c_out = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    m_in, m_out = draw(st.integers(1, c_in)), draw(st.integers(1, c_out))
    k = draw(st.sampled_from([1, 3]))
    return c_in, c_out, m_in, m_out, k, draw(st.integers(1, 2)), draw(st.integers(0, k // 2))


def test_expanded_kernel_is_the_wrap_formula() -> None:
    e = torch.randn(3, 2, 3, 3)
    w = expand_epitome(e, 7, 5)  # both wraps partial: 7 = 3 + 3 + 1, 5 = 2 + 2 + 1
    assert w.shape == (7, 5, 3, 3)
    for o in range(7):
        for i in range(5):
            assert torch.equal(w[o, i], e[o % 3, i % 2])


def test_fold_and_expand_channels() -> None:
    x = torch.arange(5.0).view(1, 5, 1, 1)
    assert fold_channels(x, 2).flatten().tolist() == [0 + 2 + 4, 1 + 3]  # the last chunk zero-padded
    assert fold_channels(x, 5) is x
    y = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    assert expand_channels(y, 7).flatten().tolist() == [10, 20, 30, 10, 20, 30, 10]
    assert epitome_channels(7, 3) == 3 and epitome_channels(6, 3) == 2
    with pytest.raises(ValueError):
        epitome_channels(4, 0)


@given(layers(), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_chunk_sum_form_equals_expanded_kernel_forward_and_gradients(
    shape: tuple[int, int, int, int, int, int, int], seed: int
) -> None:
    c_in, c_out, m_in, m_out, k, stride, padding = shape
    g = torch.Generator().manual_seed(seed)
    e_shape = (epitome_channels(c_out, m_out), epitome_channels(c_in, m_in), k, k)
    e1 = torch.randn(e_shape, generator=g, dtype=torch.float64, requires_grad=True)
    e2 = e1.detach().clone().requires_grad_(True)
    x1 = torch.randn(2, c_in, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    up = torch.randn(2, c_out, (5 + 2 * padding - k) // stride + 1, (5 + 2 * padding - k) // stride + 1,
                     generator=g, dtype=torch.float64)
    y1 = epitome_conv2d(x1, e1, c_out, stride, padding)
    y2 = F.conv2d(x2, expand_epitome(e2, c_out, c_in), None, stride, padding)
    assert y1.shape == y2.shape == up.shape
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    (y1 * up).sum().backward()
    (y2 * up).sum().backward()
    assert e1.grad is not None and x1.grad is not None
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)


def test_epitome_gradient_is_the_sum_over_wrapped_copies() -> None:
    """dL/dE[p, q] = sum of dL/dW[o, i] over every (o, i) that is a copy of E[p, q]."""
    torch.manual_seed(0)
    c_in, c_out, e_in, e_out = 5, 7, 2, 3
    e = torch.randn(e_out, e_in, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, c_in, 6, 6, dtype=torch.float64)
    epitome_conv2d(x, e, c_out, 1, 1).square().sum().backward()
    w = expand_epitome(e.detach(), c_out, c_in).requires_grad_(True)
    F.conv2d(x, w, None, 1, 1).square().sum().backward()
    assert w.grad is not None and e.grad is not None
    want = torch.zeros_like(e)
    for o in range(c_out):
        for i in range(c_in):
            want[o % e_out, i % e_in] += w.grad[o, i]
    torch.testing.assert_close(e.grad, want, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(e.grad, w.grad[:e_out, :e_in])  # really accumulated, not one copy


@pytest.mark.parametrize(("c_in", "c_out", "m_in", "m_out"), [(8, 8, 2, 2), (7, 6, 3, 4), (5, 9, 5, 2), (1, 8, 1, 4)])
def test_quantization_scales_are_shared_by_wrapped_copies(c_in: int, c_out: int, m_in: int, m_out: int) -> None:
    """Quantizing the stored epitome per (epitome) output channel = quantizing the expanded
    kernel per logical channel: the copies of one physical column share its step, integers included."""
    torch.manual_seed(1)
    layer = EpitomeConv2d(c_in, c_out, 3, padding=1, out_wrap=m_out, in_wrap=m_in, w_bits=4, a_bits=5)
    e_out = layer.epitome_shape[0]
    e_int, e_step = quantize_weight_int(layer.weight.detach(), 4)
    w_int, w_step = quantize_weight_int(layer.expanded_weight().detach(), 4)
    assert e_step.shape[0] == e_out  # one scale per physical column (epitome output)
    for o in range(c_out):
        assert torch.equal(w_step[o], e_step[o % e_out])
    assert torch.equal(w_int, expand_epitome(e_int, c_out, c_in))
    wq = fake_quant_weight(layer.weight, 4)
    assert torch.equal(layer.expanded_weight(wq), fake_quant_weight(layer.expanded_weight(), 4))


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("c_in", "c_out", "m_in", "m_out"), [(6, 8, 2, 2), (7, 5, 4, 3), (3, 4, 3, 1)])
def test_module_equals_its_dense_equivalent(signed: bool, c_in: int, c_out: int, m_in: int, m_out: int) -> None:
    torch.manual_seed(2)
    layer = EpitomeConv2d(c_in, c_out, 3, padding=1, out_wrap=m_out, in_wrap=m_in, w_bits=5, a_bits=4,
                          signed_input=signed)
    assert (layer.in_channels, layer.out_channels) == (c_in, c_out)
    assert layer.epitome_shape == (epitome_channels(c_out, m_out), epitome_channels(c_in, m_in), 3, 3)
    x = torch.randn(3, c_in, 6, 6)
    if not signed:
        x = x.relu()
    layer.train()
    layer(x)  # calibrates the clip
    layer.eval()
    dense = layer.to_dense()
    assert type(dense) is QuantConv2d and dense.weight.shape == (c_out, c_in, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-5)
    assert float(dense.act_clip) == float(layer.act_clip)


def test_densify_copies_and_replaces_every_epitome() -> None:
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        EpitomeConv2d(4, 8, 3, padding=1, out_wrap=2, in_wrap=2, w_bits=5, a_bits=5), torch.nn.ReLU(),
        QuantConv2d(8, 6, 3, padding=1, w_bits=5, a_bits=5),
        EpitomeConv2d(6, 6, 1, out_wrap=4, in_wrap=4, w_bits=5, a_bits=5),
    )
    x = torch.randn(2, 4, 5, 5)
    net.train()
    net(x)
    net.eval()
    dense = densify(net)
    assert isinstance(net[0], EpitomeConv2d) and isinstance(net[3], EpitomeConv2d)  # unchanged
    assert not any(isinstance(m, EpitomeConv2d) for m in dense.modules())
    with torch.no_grad():
        torch.testing.assert_close(net(x), dense(x), rtol=1e-5, atol=1e-5)


def test_training_updates_only_the_epitome() -> None:
    torch.manual_seed(4)
    layer = EpitomeConv2d(8, 8, 3, padding=1, out_wrap=2, in_wrap=4, w_bits=5, a_bits=5)
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and layer.weight.shape == (4, 2, 3, 3)
    layer(torch.randn(2, 8, 5, 5).relu()).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_wraps_beyond_the_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="in_wrap must be in 1..3"):
        EpitomeConv2d(3, 8, 3, out_wrap=2, in_wrap=4)
    with pytest.raises(ValueError, match="out_wrap must be in 1..8"):
        EpitomeConv2d(3, 8, 3, out_wrap=9)
    with pytest.raises(ValueError, match="larger than the layer"):
        epitome_conv2d(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 1, 1), 4)


@given(layers(), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_projection_of_an_expanded_epitome_is_that_epitome(layer: tuple[int, ...], seed: int) -> None:
    c_in, c_out, m_in, m_out, k = layer[:5]
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(epitome_channels(c_out, m_out), epitome_channels(c_in, m_in), k, k, generator=g)
    torch.testing.assert_close(project_epitome(expand_epitome(e, c_out, c_in), m_out, m_in), e)


@given(layers(), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_projection_is_the_least_squares_epitome(layer: tuple[int, ...], seed: int) -> None:
    """The residual ``w - expand(P(w))`` is orthogonal to every epitome (the gradient of the
    squared distance vanishes at ``P(w)``), and any other epitome is farther from ``w``."""
    c_in, c_out, m_in, m_out, k = layer[:5]
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c_out, c_in, k, k, generator=g, dtype=torch.float64)
    e = project_epitome(w, m_out, m_in).requires_grad_(True)
    ((w - expand_epitome(e, c_out, c_in)) ** 2).sum().backward()
    assert e.grad is not None and e.grad.abs().max().item() < 1e-9
    other = e.detach() + 0.1 * torch.randn(e.shape, generator=g, dtype=torch.float64)
    best = (w - expand_epitome(e.detach(), c_out, c_in)).norm()
    assert best < (w - expand_epitome(other, c_out, c_in)).norm()


def test_projection_refuses_wraps_beyond_the_channels() -> None:
    with pytest.raises(ValueError, match="must be in 1"):
        project_epitome(torch.zeros(4, 3, 3, 3), 2, 4)


def _twins() -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    def net(wrap: bool) -> torch.nn.Sequential:
        def conv(cin: int, cout: int, m: int) -> QuantConv2d:
            if wrap:
                return EpitomeConv2d(cin, cout, 3, padding=1, out_wrap=m, in_wrap=m, w_bits=5, a_bits=5)
            return QuantConv2d(cin, cout, 3, padding=1, w_bits=5, a_bits=5)
        return torch.nn.Sequential(QuantConv2d(1, 6, 3, padding=1, w_bits=5, a_bits=5), torch.nn.BatchNorm2d(6),
                                   torch.nn.ReLU(), conv(6, 6, 2), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
                                   conv(6, 5, 4))
    return net(False), net(True)


def test_dense_state_loads_into_the_wrapped_twin() -> None:
    """A dense twin whose wrapped convs hold expanded epitomes is reproduced exactly (weights
    projected, BatchNorms and activation clips copied); any dense state loads as the
    nearest epitomes."""
    torch.manual_seed(5)
    dense, wrapped = _twins()
    x = torch.randn(4, 1, 6, 6)
    dense.train()
    for _ in range(3):
        dense(x)  # BatchNorm statistics and activation clips move away from their defaults
    state = dense.state_dict()
    for key, c_out, c_in, m in (("3.weight", 6, 6, 2), ("6.weight", 5, 6, 4)):
        e = torch.randn(epitome_channels(c_out, m), epitome_channels(c_in, m), 3, 3)
        state[key] = expand_epitome(e, c_out, c_in)
    dense.load_state_dict(state)
    assert load_dense_state(wrapped, state) is wrapped
    dense.eval(), wrapped.eval()
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), dense(x), rtol=1e-5, atol=1e-5)
    assert float(wrapped[6].act_clip) == float(dense[6].act_clip) != 0
    state["3.weight"] = torch.randn(6, 6, 3, 3)
    load_dense_state(wrapped, state)
    torch.testing.assert_close(wrapped[3].weight.detach(), project_epitome(state["3.weight"], 2, 2))


def test_dense_state_that_does_not_fit_is_refused() -> None:
    dense, wrapped = _twins()
    state = dense.state_dict()
    with pytest.raises(ValueError, match="lacks 1 entries"):
        load_dense_state(wrapped, {k: v for k, v in state.items() if k != "1.running_mean"})
    with pytest.raises(ValueError, match=r"3.weight: dense kernel \(6, 4, 3, 3\)"):
        load_dense_state(wrapped, {**state, "3.weight": torch.zeros(6, 4, 3, 3)})
    with pytest.raises(ValueError, match="1.weight: shape"):
        load_dense_state(wrapped, {**state, "1.weight": torch.zeros(7)})
