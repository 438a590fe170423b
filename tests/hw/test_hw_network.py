"""Network parsing: MNSIM-style dicts, traced PyTorch modules, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.hw import cost_networks, network_from_dict, network_from_module
from crossnas.hw.examples import EXAMPLES, example_network
from crossnas.hw.network import Layer
from crossnas.space.arch import ArchSpec
from crossnas.space.mnsim import arch_to_network_dict


def _small() -> dict:
    return arch_to_network_dict(ArchSpec.from_string("V32w7a5-R64w9a9"), SpaceConfig(n_layers=2), (3, 32, 32), 10)


def test_compute_layers_shapes_and_bits() -> None:
    net = network_from_dict(_small())
    types = [lay.type for lay in net.layers]
    assert types == ["conv", "conv", "pooling", "conv", "conv", "conv", "element_sum", "pooling", "fc", "fc", "fc"]
    conv0, _, pool, r1, r2, short, s, hp, fc0, _, _ = net.layers
    assert (conv0.w_bits, conv0.a_bits, conv0.out_hw) == (7, 5, (32, 32))
    assert pool.out_hw == (16, 16) and pool.w_bits == 7
    assert short.inputs == (2,) and short.kernel == 1  # shortcut reads the block input (the pool)
    assert s.inputs == (5, 4)  # input_index [-1, -3]: the shortcut, then the main path
    assert hp.kernel == 8 and hp.out_hw == (2, 2)
    assert fc0.cin == 64 * 4 and fc0.w_bits == 9


def test_missing_bits_default_to_nine() -> None:
    d = {"input_shape": [1, 8, 8], "layers": [
        {"type": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 1},
        {"type": "view"}, {"type": "fc", "in_features": 256, "out_features": 10}]}
    net = network_from_dict(d)
    assert all(lay.w_bits == 9 and lay.a_bits == 9 for lay in net.layers)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["layers"][0].update(kernal_size=3), "unknown key"),
        (lambda d: d["layers"][0].update(out_channels="32"), "out_channels"),
        (lambda d: d["layers"][0].update(out_channels=0), "out_channels"),
        (lambda d: d["layers"][0].update(weight_bit=17), "1..16"),
        (lambda d: d["layers"][0].update(activation_bit=0), "1..16"),
        (lambda d: d["layers"][3].update(in_channels=31), "does not match"),
        (lambda d: d["layers"][0].update(type="lstm"), "unknown layer type"),
        (lambda d: d.update(input_shape=[3, 32]), "input_shape"),
        (lambda d: d.update(layerz=[]), "unknown key"),
        (lambda d: d["layers"][-1].update(in_features=7), "in_features"),
        (lambda d: d["layers"][0].update(input_index=[-3]), "before the network input"),
        # values equal to valid ones but of the wrong type (the parser's inline fast paths)
        (lambda d: d["layers"][1].update(features=32.0), "features"),
        (lambda d: d["layers"][1].update(features=None), "features"),
        (lambda d: d["layers"][1].update(features=True), "features"),
        (lambda d: d["layers"][1].update(features=31), "does not match"),
        (lambda d: d["layers"][0].update(weight_bit=5.0), "1..16"),
        (lambda d: d["layers"][2].update(activation_bit=True), "1..16"),
        (lambda d: d["layers"][1].update(input_index=[-1.0]), "input_index"),
        (lambda d: d["layers"][0].update(stride=1.0), "stride"),
        (lambda d: d["layers"][0].update(padding=-1), "padding"),
        (lambda d: d["layers"][0].update(kernel_size=[3, 5]), "non-square"),
        (lambda d: d["layers"][0].update(type=["conv"]), "unknown layer type"),
    ],
)
def test_bad_network_is_one_line_error(mutate, needle) -> None:  # noqa: ANN001
    d = copy.deepcopy(_small())
    mutate(d)
    with pytest.raises(CrossnasError) as exc:
        network_from_dict(d)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_builtin_names_the_allowed_ones() -> None:
    with pytest.raises(CrossnasError, match="vgg8"):
        example_network("vgg9")


def test_first_block_residual_is_costed() -> None:
    """MNSIM crashes on this (its shortcut reads the network input); we cost it."""
    d = arch_to_network_dict(ArchSpec.from_string("R32w9a9-V64w9a9"), SpaceConfig(n_layers=2), (3, 32, 32), 10)
    net = network_from_dict(d)
    shortcut = [lay for lay in net.layers if lay.type == "conv" and lay.kernel == 1][0]
    assert shortcut.inputs == (-1,)
    b = cost_networks([net], __import__("crossnas.config.hardware", fromlist=["x"]).HardwareConfig())
    assert b.latency_ms[0] > 0 and b.energy_mJ[0] > 0 and b.area_mm2[0] > 0


class _Tiny(nn.Module):
    """Kernels 3 and 5, paddings 0/1/2, strides 1/2, a residual sum, a non-square input."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(8, 16, 3, stride=2, padding=0)
        self.fc = nn.Linear(16 * 2 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        y = torch.relu(self.c2(y) + y)
        y = self.c3(self.pool(y))
        return self.fc(torch.flatten(y, 1))


_TINY_LAYERS = (  # (name, type, inputs, cin, cout, kernel, stride, padding, in_hw, out_hw, w_bits, a_bits)
    ("conv0", "conv", (-1,), 3, 8, 3, 1, 1, (10, 14), (10, 14), 9, 9),
    ("conv1", "conv", (0,), 8, 8, 5, 1, 2, (10, 14), (10, 14), 9, 9),
    ("sum0", "element_sum", (1, 0), 8, 8, 1, 1, 0, (10, 14), (10, 14), 9, 9),
    ("pool0", "pooling", (2,), 8, 8, 2, 2, 0, (10, 14), (5, 7), 9, 9),
    ("conv2", "conv", (3,), 8, 16, 3, 2, 0, (5, 7), (2, 3), 9, 9),
    ("fc0", "fc", (4,), 96, 10, 1, 1, 0, (1, 1), (1, 1), 9, 9),
)


def _fields(layer: Layer) -> tuple:
    return (layer.name, layer.type, layer.inputs, layer.cin, layer.cout, layer.kernel, layer.stride, layer.padding,
            layer.in_hw, layer.out_hw, layer.w_bits, layer.a_bits)


def test_module_trace_equals_dict_form() -> None:
    """Every field of every traced layer (not only the shapes) is what the module does,
    and equals the MNSIM-style dict form of the same network."""
    net_m = network_from_module(_Tiny(), torch.zeros(1, 3, 10, 14))
    d = {"input_shape": [3, 10, 14], "layers": [
        {"type": "conv", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1, "stride": 1},
        {"type": "bn", "features": 8}, {"type": "relu"},
        {"type": "conv", "in_channels": 8, "out_channels": 8, "kernel_size": 5, "padding": 2, "stride": 1},
        {"type": "element_sum", "input_index": [-1, -2]}, {"type": "relu"},
        {"type": "pooling", "mode": "MAX", "kernel_size": 2, "stride": 2},
        {"type": "conv", "in_channels": 8, "out_channels": 16, "kernel_size": 3, "padding": 0, "stride": 2},
        {"type": "view"}, {"type": "fc", "in_features": 96, "out_features": 10}]}
    net_d = network_from_dict(d)
    assert net_m.input_shape == net_d.input_shape == (3, 10, 14)
    assert [_fields(lay) for lay in net_m.layers] == list(_TINY_LAYERS)
    assert [_fields(lay) for lay in net_d.layers] == list(_TINY_LAYERS)
    assert net_m == net_d
    # the traced shapes are the module's real ones
    with torch.no_grad():
        m = _Tiny().eval()
        x = torch.zeros(1, 3, 10, 14)
        assert tuple(m.c1(x).shape[2:]) == _TINY_LAYERS[0][9]
        assert tuple(m.c3(m.pool(torch.zeros(1, 8, 10, 14))).shape[2:]) == _TINY_LAYERS[4][9]


def test_module_trace_reads_quant_layer_bits() -> None:
    from crossnas.quant import QuantConv2d, QuantLinear

    class Q(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = QuantConv2d(3, 4, 3, padding=1, w_bits=5, a_bits=7)
            self.f = QuantLinear(4 * 8 * 8, 10, w_bits=6, a_bits=8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.f(torch.flatten(self.c(x), 1))

    net = network_from_module(Q(), torch.zeros(1, 3, 8, 8))
    assert [(lay.type, lay.w_bits, lay.a_bits) for lay in net.layers] == [("conv", 5, 7), ("fc", 6, 8)]


def test_every_builtin_parses() -> None:
    for name in EXAMPLES:
        net = network_from_dict(example_network(name))
        assert net.layers[-1].type == "fc" and net.layers[-1].cout == 10
