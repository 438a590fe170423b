"""Guards of hw/network.py: every traced op is mapped or named, absurd sizes are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.hw.network import (
    MAX_ACTIVATIONS,
    MAX_CHANNELS,
    MAX_FEATURES,
    MAX_HW,
    MAX_KERNEL,
    MAX_LAYERS,
    MAX_PIXELS,
    MAX_WEIGHTS,
    Network,
    network_from_dict,
    network_from_module,
)


class _Net(nn.Module):
    """``forward`` is ``fn(self, x)``; the keyword modules become submodules."""

    def __init__(self, fn: Callable[..., torch.Tensor], **mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for name, m in mods.items():
            self.add_module(name, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def _conv(cin: int = 3, cout: int = 4, k: int | tuple[int, int] = 1, **kw: object) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, **kw)  # type: ignore[arg-type]


def _refusal(module: nn.Module, shape: tuple[int, ...] = (1, 3, 8, 8)) -> str:
    with pytest.raises(CrossnasError) as exc:
        network_from_module(module, torch.zeros(*shape))
    msg = str(exc.value)
    assert "\n" not in msg and msg == msg.strip()
    return msg


# (id, module factory, input shape, substrings the one-line message must contain)
_REFUSED = [
    ("cat", lambda: _Net(lambda s, x: torch.cat([s.a(x), s.b(x)], 1), a=_conv(), b=_conv()),
     (1, 3, 8, 8), ["torch.cat", "concatenation"]),
    ("stack", lambda: _Net(lambda s, x: torch.stack([s.a(x), s.b(x)], 1), a=_conv(), b=_conv()),
     (1, 3, 8, 8), ["torch.stack", "concatenation"]),
    ("kernel_1x5", lambda: _Net(lambda s, x: s.c(x), c=_conv(k=(1, 5))),
     (1, 3, 8, 8), ["module c (Conv2d)", "kernel_size (1, 5)", "non-square"]),
    ("stride_1x2", lambda: _Net(lambda s, x: s.c(x), c=_conv(k=3, stride=(1, 2))),
     (1, 3, 8, 8), ["module c (Conv2d)", "stride (1, 2)", "non-square"]),
    ("padding_0x1", lambda: _Net(lambda s, x: s.c(x), c=_conv(k=3, padding=(0, 1))),
     (1, 3, 8, 8), ["module c (Conv2d)", "padding (0, 1)", "non-square"]),
    ("conv_dilation", lambda: _Net(lambda s, x: s.c(x), c=_conv(k=3, dilation=2)),
     (1, 3, 8, 8), ["module c (Conv2d)", "dilation 2"]),
    ("pool_dilation", lambda: _Net(lambda s, x: F.max_pool2d(s.c(x), 2, dilation=2), c=_conv()),
     (1, 3, 8, 8), ["max_pool2d", "dilation 2"]),
    ("pool_module_non_square", lambda: _Net(lambda s, x: s.p(s.c(x)), c=_conv(), p=nn.MaxPool2d((2, 1))),
     (1, 3, 8, 8), ["module p (MaxPool2d)", "kernel_size (2, 1)"]),
    ("functional_pool_non_square", lambda: _Net(lambda s, x: F.avg_pool2d(s.c(x), (2, 4)), c=_conv()),
     (1, 3, 8, 8), ["avg_pool2d", "kernel_size (2, 4)"]),
    ("ceil_mode", lambda: _Net(lambda s, x: F.max_pool2d(s.c(x), 2, ceil_mode=True), c=_conv()),
     (1, 3, 7, 7), ["max_pool2d", "ceil_mode"]),
    ("return_indices", lambda: _Net(lambda s, x: F.max_pool2d(s.c(x), 2, return_indices=True)[0], c=_conv()),
     (1, 3, 8, 8), ["max_pool2d", "return_indices"]),
    ("adaptive_uneven", lambda: _Net(lambda s, x: F.adaptive_avg_pool2d(s.c(x), 3), c=_conv()),
     (1, 3, 8, 8), ["adaptive_avg_pool2d", "8x8 -> 3x3", "uneven"]),
    ("adaptive_non_square", lambda: _Net(lambda s, x: s.p(s.c(x)), c=_conv(), p=nn.AdaptiveAvgPool2d(1)),
     (1, 3, 8, 4), ["module p (AdaptiveAvgPool2d)", "non-square"]),
    ("interpolate", lambda: _Net(lambda s, x: F.interpolate(s.c(x), scale_factor=2), c=_conv()),
     (1, 3, 8, 8), ["interpolate", "(1, 4, 8, 8) -> (1, 4, 16, 16)", "not modelled"]),
    ("upsample_module", lambda: _Net(lambda s, x: s.u(s.c(x)), c=_conv(), u=nn.Upsample(scale_factor=2)),
     (1, 3, 8, 8), ["module u (Upsample)", "changes the shape"]),
    ("channel_slice", lambda: _Net(lambda s, x: s.c(x)[:, :2], c=_conv()),
     (1, 3, 8, 8), ["getitem", "(1, 4, 8, 8) -> (1, 2, 8, 8)"]),
    ("chunk", lambda: _Net(lambda s, x: s.c(x).chunk(2, 1)[0], c=_conv()),
     (1, 3, 8, 8), ["Tensor.chunk", "several tensors"]),
    ("permute", lambda: _Net(lambda s, x: s.c(x).permute(0, 2, 3, 1), c=_conv()),
     (1, 3, 8, 8), ["Tensor.permute", "changes the shape"]),
    ("reduction", lambda: _Net(lambda s, x: s.c(x).sum(1), c=_conv()),
     (1, 3, 8, 8), ["Tensor.sum", "changes the shape"]),
    ("conv_transpose", lambda: _Net(lambda s, x: s.u(s.c(x)), c=_conv(), u=nn.ConvTranspose2d(4, 4, 3, padding=1)),
     (1, 3, 8, 8), ["module u (ConvTranspose2d)", "weighted layer"]),
    ("conv1d", lambda: _Net(lambda s, x: s.u(s.c(x).flatten(2)), c=_conv(), u=nn.Conv1d(4, 4, 1)),
     (1, 3, 8, 8), ["module u (Conv1d)", "weighted layer"]),
    ("functional_conv_weight", lambda: _Net(lambda s, x: F.conv2d(s.c(x), s.c.weight[:, :3]), c=_conv()),
     (1, 3, 8, 8), ["torch.conv2d", "functional conv"]),
    ("matmul", lambda: _Net(lambda s, x: s.c(x) @ s.c(x), c=_conv()),
     (1, 3, 8, 8), ["operator.matmul", "functional conv/matmul"]),
    ("se_multiply", lambda: _Net(lambda s, x: s.c(x) * torch.sigmoid(F.adaptive_avg_pool2d(s.c(x), 1)), c=_conv()),
     (1, 3, 8, 8), ["operator.mul", "joins 2 branches"]),
    ("broadcast_add", lambda: _Net(lambda s, x: s.c(x) + F.adaptive_avg_pool2d(s.c(x), 1), c=_conv()),
     (1, 3, 8, 8), ["operator.add", "(1, 4, 8, 8) and (1, 4, 1, 1)"]),
    ("linear_per_pixel", lambda: _Net(lambda s, x: s.f(s.c(x)), c=_conv(cout=8), f=nn.Linear(8, 8)),
     (1, 3, 8, 8), ["module f (Linear)", "flat vector"]),
    ("grouped_conv", lambda: _Net(lambda s, x: s.c(x), c=_conv(4, 4, 3, groups=2)),
     (1, 4, 8, 8), ["module c (Conv2d)", "groups=2"]),
    ("lstm", lambda: _Net(lambda s, x: s.r(s.c(x).flatten(2))[0], c=_conv(), r=nn.LSTM(64, 8)),
     (1, 3, 8, 8), ["module r (LSTM)", "weighted layer"]),
    ("control_flow", lambda: _Net(lambda s, x: s.c(x) if x.sum() > 0 else x, c=_conv()),
     (1, 3, 8, 8), ["cannot be traced"]),
]


@pytest.mark.parametrize(("factory", "shape", "needles"), [r[1:] for r in _REFUSED], ids=[r[0] for r in _REFUSED])
def test_unmodelled_op_is_named_in_one_line(factory, shape, needles) -> None:  # noqa: ANN001
    msg = _refusal(factory(), shape)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_inception_like_concat_network_is_refused() -> None:
    class Inception(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b1 = nn.Conv2d(3, 8, 1)
            self.b3 = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([self.b1(x), self.b3(x)], dim=1)
            return self.fc(torch.flatten(F.max_pool2d(y, 2), 1))

    msg = _refusal(Inception())
    assert msg.startswith("torch.cat (node cat): concatenation is not modelled")


# (id, functional pooling applied to an 8-channel 12x12 map, expected (kernel, stride, padding))
_POOLS = [
    ("max_k2", lambda y: F.max_pool2d(y, 2), (2, 2, 0)),
    ("max_positional", lambda y: F.max_pool2d(y, 3, 2, 1), (3, 2, 1)),
    ("max_keywords", lambda y: F.max_pool2d(y, kernel_size=3, stride=2, padding=1), (3, 2, 1)),
    ("max_pairs", lambda y: F.max_pool2d(y, (4, 4), stride=(4, 4)), (4, 4, 0)),
    ("max_input_keyword", lambda y: F.max_pool2d(input=y, kernel_size=2, stride=1), (2, 1, 0)),
    ("torch_max_pool2d", lambda y: torch.max_pool2d(y, 3), (3, 3, 0)),
    ("avg_k2", lambda y: F.avg_pool2d(y, 2), (2, 2, 0)),
    ("avg_stride_kw", lambda y: F.avg_pool2d(y, kernel_size=(3, 3), stride=3, padding=1), (3, 3, 1)),
    ("avg_dynamic_kernel", lambda y: F.avg_pool2d(y, y.size()[2:]), (12, 12, 0)),
    ("adaptive_avg_1", lambda y: F.adaptive_avg_pool2d(y, 1), (12, 12, 0)),
    ("adaptive_max_3", lambda y: F.adaptive_max_pool2d(y, (3, 3)), (4, 4, 0)),
    ("global_mean", lambda y: y.mean((2, 3), keepdim=True), (12, 12, 0)),
]


@pytest.mark.parametrize(("pool", "expected"), [p[1:] for p in _POOLS], ids=[p[0] for p in _POOLS])
def test_functional_pooling_is_a_pooling_layer(pool, expected) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    m = _Net(lambda s, x: s.f(torch.flatten(pool(s.c(x)), 1)), c=_conv(3, 8, 3, padding=1), f=nn.LazyLinear(10))
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        ref = pool(m.c(x))  # the real pooled map, computed apart from the tracer
        m(x)  # materialise the lazy fc
    net = network_from_module(m, x)
    assert [lay.type for lay in net.layers] == ["conv", "pooling", "fc"]
    pool_layer = net.layers[1]
    assert (pool_layer.kernel, pool_layer.stride, pool_layer.padding) == expected
    assert pool_layer.inputs == (0,) and pool_layer.cin == pool_layer.cout == 8
    assert pool_layer.in_hw == (12, 12) and pool_layer.out_hw == tuple(ref.shape[2:])
    assert net.layers[2].inputs == (1,) and net.layers[2].cin == ref.numel()


def test_functional_max_pool_equals_module_and_dict_forms() -> None:
    def body(pool: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        return lambda s, x: s.f(torch.flatten(pool(s, torch.relu(s.c(x))), 1))

    functional = _Net(body(lambda s, y: F.max_pool2d(y, kernel_size=3, stride=2, padding=1)),
                      c=_conv(3, 8, 3, padding=1), f=nn.Linear(8 * 5 * 5, 10))
    module = _Net(body(lambda s, y: s.p(y)), c=_conv(3, 8, 3, padding=1), f=nn.Linear(8 * 5 * 5, 10),
                  p=nn.MaxPool2d(3, stride=2, padding=1))
    d = {"input_shape": [3, 10, 10], "layers": [
        {"type": "conv", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "relu"}, {"type": "pooling", "mode": "MAX", "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "view"}, {"type": "fc", "in_features": 200, "out_features": 10}]}
    x = torch.zeros(1, 3, 10, 10)
    assert network_from_module(functional, x) == network_from_module(module, x) == network_from_dict(d)


@pytest.mark.parametrize(
    "join",
    [lambda a, b: a + b, lambda a, b: torch.add(a, b), lambda a, b: a.add(b), lambda a, b: a.add_(b)],
    ids=["plus", "torch_add", "method_add", "inplace_add"],
)
def test_add_of_two_branches_is_element_sum(join) -> None:  # noqa: ANN001
    m = _Net(lambda s, x: join(s.a(x), s.b(x)), a=_conv(3, 4, 3, padding=1), b=_conv(3, 4, 1))
    net = network_from_module(m, torch.zeros(1, 3, 6, 6))
    assert [lay.type for lay in net.layers] == ["conv", "conv", "element_sum"]
    assert net.layers[2].inputs == (0, 1) and net.layers[2].out_hw == (6, 6)


def test_shape_preserving_ops_are_folded() -> None:
    """Unknown element-wise ops that keep the shape pass; the compute layers are unchanged."""
    plain = _Net(lambda s, x: s.f(torch.flatten(s.c(x), 1)), c=_conv(3, 4, 3, padding=1), f=nn.Linear(64, 10))
    busy = _Net(
        lambda s, x: s.f(torch.flatten(
            s.d(s.n(F.gelu(F.silu(s.c(x)) * 2.0 + 1.0 + s.bias).contiguous())).clamp(-1, 1), 1)
        ).view(1, 10).reshape(-1).unsqueeze(0).squeeze(0),
        c=_conv(3, 4, 3, padding=1), f=nn.Linear(64, 10), n=nn.GroupNorm(2, 4), d=nn.Dropout2d(0.1),
    )
    busy.bias = nn.Parameter(torch.zeros(1, 4, 4, 4))  # a constant of the map's shape: not a branch
    x = torch.zeros(1, 3, 4, 4)
    assert network_from_module(busy, x) == network_from_module(plain, x)


def test_conv_same_and_valid_padding() -> None:
    m = _Net(lambda s, x: s.b(s.a(x)), a=_conv(3, 4, 5, padding="same"), b=_conv(4, 4, 3, padding="valid"))
    a, b = network_from_module(m, torch.zeros(1, 3, 9, 9)).layers
    assert (a.kernel, a.padding, a.out_hw) == (5, 2, (9, 9))
    assert (b.kernel, b.padding, b.out_hw) == (3, 0, (7, 7))


def test_training_flag_is_restored() -> None:
    m = nn.Sequential(_conv(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    m.train()
    network_from_module(m, torch.zeros(1, 3, 8, 8))
    assert m.training


# --- size limits ------------------------------------------------------------------------

def _conv_net(**conv: object) -> dict:
    layer = {"type": "conv", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1, **conv}
    return {"input_shape": [3, 32, 32], "layers": [layer]}


def _refused_dict(d: dict) -> str:
    with pytest.raises(CrossnasError) as exc:
        network_from_dict(d)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_billion_channel_layer_is_refused() -> None:
    msg = _refused_dict(_conv_net(out_channels=10**9))
    assert msg == f"network.layers[0].out_channels: 1000000000 is outside the allowed range 1..{MAX_CHANNELS}"


@pytest.mark.parametrize(
    ("d", "needles"),
    [
        (_conv_net(in_channels=10**9), ["in_channels", "1000000000", f"1..{MAX_CHANNELS}"]),
        (_conv_net(kernel_size=65), ["kernel_size", "65", f"1..{MAX_KERNEL}"]),
        (_conv_net(stride=10**6), ["stride", "1000000", f"1..{MAX_KERNEL}"]),
        (_conv_net(padding=10**12), ["padding", str(10**12), f"0..{MAX_KERNEL}"]),
        (_conv_net(kernel_size=[1, 5]), ["kernel_size", "non-square [1, 5]"]),
        ({"input_shape": [10**9, 8, 8], "layers": []}, ["input_shape", "channels", "1000000000"]),
        ({"input_shape": [3, 10**6, 8], "layers": []}, ["input_shape", "1000000x8", f"1..{MAX_HW}"]),
        ({"input_shape": [1, 8192, 8192], "layers": []}, ["input_shape", "pixels", str(8192**2), str(MAX_PIXELS)]),
        ({"input_shape": [128, 4096, 4096], "layers": []}, ["input_shape", "values", str(MAX_ACTIVATIONS)]),
        ({"input_shape": [1, 4096, 4096], "layers": [
            {"type": "conv", "in_channels": 1, "out_channels": 1, "kernel_size": 1, "padding": 64}]},
         ["layers[0]", "output", "pixels", "4224x4224", str(MAX_PIXELS)]),
        ({"input_shape": [64, 4096, 4096], "layers": [
            {"type": "conv", "in_channels": 64, "out_channels": 128, "kernel_size": 1}]},
         ["layers[0]", "output", "values", "128x4096x4096", str(MAX_ACTIVATIONS)]),
        ({"input_shape": [2**20, 1, 1], "layers": [
            {"type": "conv", "in_channels": 2**20, "out_channels": 2**20, "kernel_size": 1}]},
         ["layers[0]", "weights", f"{2**20}x{2**20}", str(MAX_WEIGHTS)]),
        ({"input_shape": [1, 1, 1], "layers": [
            {"type": "view"}, {"type": "fc", "in_features": 1, "out_features": 10**9}]},
         ["layers[1].out_features", "1000000000", f"1..{MAX_FEATURES}"]),
        ({"input_shape": [4096, 64, 64], "layers": [
            {"type": "view"}, {"type": "fc", "in_features": 2**24, "out_features": 512}]},
         ["layers[1]", "weights", str(2**24 * 512), str(MAX_WEIGHTS)]),
        ({"input_shape": [3, 8, 8], "layers": [{"type": "relu"}] * (MAX_LAYERS + 1)},
         ["network.layers", str(MAX_LAYERS + 1), f"1..{MAX_LAYERS}"]),
    ],
    ids=["in_channels", "kernel", "stride", "padding", "non_square", "input_c", "input_h", "input_pixels",
         "input_values", "output_pixels", "output_values", "conv_weights", "fc_features", "fc_weights", "n_layers"],
)
def test_absurd_sizes_are_one_line_errors(d, needles) -> None:  # noqa: ANN001
    msg = _refused_dict(d)
    for needle in needles:
        assert needle in msg, (needle, msg)


def _channels_net(c: int) -> dict:
    return {"input_shape": [3, 2, 2], "layers": [
        {"type": "conv", "in_channels": 3, "out_channels": c, "kernel_size": 1},
        {"type": "pooling", "kernel_size": 2}, {"type": "view"},
        {"type": "fc", "in_features": c, "out_features": 10}]}


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(1, 4096), st.integers(MAX_CHANNELS - 2, MAX_CHANNELS + 2), st.integers(1, 10**30)))
def test_channel_bound_property(c: int) -> None:
    if c <= MAX_CHANNELS:
        net = network_from_dict(_channels_net(c))
        assert net.layers[0].cout == c and net.layers[-1].cin == c
    else:
        assert _refused_dict(_channels_net(c)) == (
            f"network.layers[0].out_channels: {c} is outside the allowed range 1..{MAX_CHANNELS}"
        )


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["kernel_size", "stride", "padding"]),
    st.one_of(st.integers(0, 2 * MAX_KERNEL), st.integers(2 * MAX_KERNEL, 10**20)),
)
def test_window_bound_property(key: str, v: int) -> None:
    d = {"input_shape": [1, 160, 160], "layers": [
        {"type": "conv", "in_channels": 1, "out_channels": 2, "kernel_size": 3, key: v}]}
    lo = 0 if key == "padding" else 1
    if lo <= v <= MAX_KERNEL:
        assert isinstance(network_from_dict(d), Network)
    else:
        assert _refused_dict(d) == f"network.layers[0].{key}: {v} is outside the allowed range {lo}..{MAX_KERNEL}"


def test_module_sizes_are_checked_before_running() -> None:
    wide = _Net(lambda s, x: s.c(x), c=_conv(1, MAX_CHANNELS + 1, 1))
    msg = _refusal(wide, (1, 1, 8, 8))
    assert msg == f"module c (Conv2d) out_channels: {MAX_CHANNELS + 1} is outside the allowed range 1..{MAX_CHANNELS}"
    msg = _refusal(_Net(lambda s, x: s.c(x), c=_conv(1, 1, MAX_KERNEL + 1)), (1, 1, 70, 70))
    assert f"kernel_size: {MAX_KERNEL + 1} is outside the allowed range 1..{MAX_KERNEL}" in msg
    # an example input too large to allocate is refused from its shape alone
    with pytest.raises(CrossnasError, match=f"example_input: feature map 20000x20000 .* 1..{MAX_HW} per side"):
        network_from_module(wide, torch.empty(1, 1, 20000, 20000, device="meta"))
    with pytest.raises(CrossnasError, match="example_input: expected a tensor of shape"):
        network_from_module(wide, torch.zeros(8, 8))
