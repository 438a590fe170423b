"""Supernet paths vs extracted static models, slicing, recalibration, scoring."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossnas.config.space import SpaceConfig
from crossnas.data.bundle import DataBundle
from crossnas.errors import CrossnasError
from crossnas.quant import QuantConv2d, QuantLinear
from crossnas.space import arch_to_network_dict
from crossnas.space.arch import ArchSpec, random_arch
from crossnas.supernet import SubnetScorer, Supernet, build_static

SHAPE = (1, 8, 8)


def _space(quantize: bool) -> SpaceConfig:
    return SpaceConfig(n_layers=3, widths=(4, 8), w_bits=(3, 5), a_bits=(4, 6), head={"fc": (12,)}, quantize=quantize)


def _trained(space: SpaceConfig, seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> Supernet:
    """A supernet whose BN statistics and clips have seen a few random paths."""
    torch.manual_seed(seed)
    net = Supernet(space, shape, 10)
    rng = np.random.default_rng(seed)
    net.train()
    with torch.no_grad():
        for _ in range(12):
            net(torch.randn(16, *shape) * 2, random_arch(space, rng, shape[1]))
    return net.eval()


@functools.lru_cache(maxsize=4)
def _trained_ro(quantize: bool, seed: int = 0) -> Supernet:
    """A shared trained supernet for tests that don't modify it."""
    return _trained(_space(quantize), seed)


ARCHS = ["V8w5a6-v4w3a4-R8w5a4", "S-R8w3a6-V4w5a4", "v4w5a4-S-S", "S-S-R4w3a4", "R8w5a6-R4w3a6-V8w3a4"]


@pytest.mark.parametrize("quantize", [True, False])
@pytest.mark.parametrize("arch", ARCHS)
def test_extract_equals_supernet_path(arch: str, quantize: bool) -> None:
    net = _trained_ro(quantize)
    spec = ArchSpec.from_string(arch)
    static = net.extract(spec)
    assert not static.training
    x = torch.randn(32, *SHAPE) * 1.5
    with torch.no_grad():
        diff = (net(x, spec) - static(x)).abs().max().item()
    assert diff <= 1e-5


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_extract_equals_for_random_paths(seed: int) -> None:
    space = _space(True)
    net = _trained_ro(True, seed % 2)
    spec = random_arch(space, np.random.default_rng(seed), 8)
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        assert (net(x, spec) - net.extract(spec)(x)).abs().max().item() <= 1e-5


def test_static_layers_are_quant_layers_and_match_the_mnsim_description() -> None:
    space = _space(True)
    spec = ArchSpec.from_string("S-R8w3a6-V4w5a4")
    static = build_static(spec, space, SHAPE, 10)
    convs = [m for m in static.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in static.modules() if isinstance(m, torch.nn.Linear)]
    assert all(isinstance(m, QuantConv2d) for m in convs) and all(isinstance(m, QuantLinear) for m in fcs)
    desc = arch_to_network_dict(spec, space, SHAPE, 10)["layers"]
    d_convs = [(d["in_channels"], d["out_channels"], d["kernel_size"], d["weight_bit"]) for d in desc if d["type"] == "conv"]
    m_convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.w_bits) for m in convs]
    assert sorted(d_convs) == sorted(m_convs)
    d_fcs = [(d["in_features"], d["out_features"]) for d in desc if d["type"] == "fc"]
    assert d_fcs == [(m.in_features, m.out_features) for m in fcs]
    # only the convs reading the image quantize a signed input
    assert [m.signed_input for m in convs] == [True, False, True, False, False]


def test_static_model_is_fx_traceable() -> None:
    space = _space(True)
    static = _trained(space).extract(ArchSpec.from_string("R8w5a6-R4w3a6-V8w3a4"))
    class LayerTracer(torch.fx.Tracer):  # quant layers are the cost model's leaves
        def is_leaf_module(self, m: torch.nn.Module, name: str) -> bool:
            return isinstance(m, (QuantConv2d, QuantLinear)) or super().is_leaf_module(m, name)

    gm = torch.fx.GraphModule(static, LayerTracer().trace(static))
    x = torch.randn(4, *SHAPE)
    assert torch.equal(gm(x), static(x))
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert "features.0.shortcut" in called and "head.fc1" in called


def test_narrow_path_uses_only_the_weight_prefix() -> None:
    space = _space(False)
    net = _trained(space)
    spec = ArchSpec.from_string("v4w5a4-S-S")
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        before = net(x, spec)
        blk = net.blocks[0]["vgg_nopool"]
        blk.conv1.weight[4:].normal_()
        blk.conv2.weight[4:].normal_()
        blk.conv2.weight[:, 4:].normal_()
        assert torch.equal(before, net(x, spec))
        blk.conv1.weight[:4].mul_(-1)
        assert not torch.allclose(before, net(x, spec))


def test_paths_leave_no_state_behind_in_eval() -> None:
    net = _trained(_space(True))
    a, b = ArchSpec.from_string(ARCHS[0]), ArchSpec.from_string(ARCHS[1])
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        ya = net(x, a)
        net(x, b)
        assert torch.equal(ya, net(x, a))


def test_weight_noise_only_in_training() -> None:
    space = _space(False)
    torch.manual_seed(0)
    noisy = Supernet(space, SHAPE, 10, weight_noise=0.2)
    clean = Supernet(space, SHAPE, 10)
    clean.load_state_dict(noisy.state_dict())
    spec = ArchSpec.from_string(ARCHS[0])
    x = torch.randn(16, *SHAPE)
    noisy.eval(), clean.eval()
    assert torch.equal(noisy(x, spec), clean(x, spec))
    noisy.train(), clean.train()
    space_nd = SpaceConfig(**{**space.model_dump(), "head": {"fc": (12,), "dropout": 0.0}})
    assert space_nd.head.dropout == 0.0
    torch.manual_seed(1)
    y1 = noisy(x, spec)
    torch.manual_seed(1)
    y2 = clean(x, spec)
    assert not torch.allclose(y1, y2)


def test_recalibrate_touches_only_the_path_slices() -> None:
    net = _trained(_space(True))
    before = {k: v.clone() for k, v in net.named_buffers()}
    spec = ArchSpec.from_string("v4w5a4-S-S")
    net.recalibrate(spec, [torch.randn(16, *SHAPE) for _ in range(3)])
    after = dict(net.named_buffers())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("blocks.0.vgg_nopool.bn1") for k in changed)
    assert all(k.startswith(("blocks.0.vgg_nopool", "head")) for k in changed)
    rm = after["blocks.0.vgg_nopool.bn1.running_mean"]
    assert torch.equal(rm[4:], before["blocks.0.vgg_nopool.bn1.running_mean"][4:])


def test_recalibration_is_the_mean_of_batch_statistics() -> None:
    space = _space(False)
    net = _trained(space)
    spec = ArchSpec.from_string("v4w5a4-S-S")
    batches = [torch.randn(16, *SHAPE) + i for i in range(3)]
    net.recalibrate(spec, batches)
    conv = net.blocks[0]["vgg_nopool"].conv1
    means = [torch.nn.functional.conv2d(b, conv.weight[:4, :1], padding=1).mean(dim=(0, 2, 3)) for b in batches]
    expect = torch.stack(means).mean(0)
    got = net.blocks[0]["vgg_nopool"].bn1.running_mean[:4]
    assert torch.allclose(got, expect, atol=1e-5)


def _bundle(n: int = 96) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, *SHAPE, generator=g) + y.view(-1, 1, 1, 1) * 0.3
    return DataBundle("digits", x, y, x[:40], y[:40], x[:40], y[:40], SHAPE, 10, (0.0,), (1.0,))


def test_scorer_is_order_independent_and_restores_buffers() -> None:
    net = _trained(_space(True))
    scorer = SubnetScorer(net, _bundle(), bn_batches=2, batch_size=16)
    snap = {k: v.clone() for k, v in net.named_buffers()}
    specs = [ArchSpec.from_string(a) for a in ARCHS[:3]]
    first = scorer.score_many(specs)
    again = scorer.score_many(list(reversed(specs)))[::-1]
    assert first == again
    assert all(0.0 <= a <= 1.0 for a in first)
    scorer.restore()
    assert all(torch.equal(v, snap[k]) for k, v in net.named_buffers())
    # the scorer's extract is the recalibrated model the score was measured on
    m = scorer.extract(specs[0])
    x, y = _bundle().val_x, _bundle().val_y
    with torch.no_grad():
        acc = (m(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(first[0])


def test_invalid_specs_are_rejected() -> None:
    space = _space(True)
    net = _trained(space)
    with pytest.raises(CrossnasError):
        net.extract(ArchSpec.from_string("V8w5a6-V8w5a6-V8w5a6"))  # 3 pools on 8x8 with a 2x2 head
    with pytest.raises(CrossnasError):
        build_static(ArchSpec.from_string("V16w5a6-S-S"), space, SHAPE, 10)
    scorer = SubnetScorer(net, _bundle(), bn_batches=1, batch_size=16)
    with pytest.raises(CrossnasError):
        scorer.score(ArchSpec.from_string("S-S-S"))


@pytest.mark.parametrize("arch", ["V8w5a6-v4w3a4-R8w5a4", "R8w5a6-R4w3a6-V8w3a4", "S-v8w3a4-R4w5a6"])
def test_channels_last_batches_train_the_same(arch: str) -> None:
    """train.channels_last only changes the memory layout: a training step on NHWC
    batches gives the outputs, gradients and BN statistics of the NCHW step."""
    space = SpaceConfig(n_layers=3, widths=(4, 8), head={"fc": (12,)}, quantize=False)
    spec = ArchSpec.from_string(arch)
    torch.manual_seed(0)
    a = Supernet(space, (3, 8, 8), 10).train()
    b = Supernet(space, (3, 8, 8), 10).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(16, 3, 8, 8)
    xc = x.contiguous(memory_format=torch.channels_last)
    assert not xc.is_contiguous() and xc.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(1)
    out_a = a(x, spec)
    torch.manual_seed(1)  # same dropout mask
    out_b = b(xc, spec)
    assert torch.allclose(out_a, out_b, atol=1e-5)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    grads = [(n, p.grad, q.grad) for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True)]
    assert any(ga is not None for _, ga, _ in grads)
    for n, ga, gb in grads:
        assert (ga is None) == (gb is None), n
        if ga is not None:
            assert torch.allclose(ga, gb, atol=1e-4, rtol=1e-4), n
    for (n, va), vb in zip(a.named_buffers(), b.buffers(), strict=True):
        assert torch.allclose(va.float(), vb.float(), atol=1e-5), n
