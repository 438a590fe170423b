"""Epitome paths in the supernet, the static models they extract to, and their PIM accuracy path."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.hw import cost_network
from crossnas.quant import EpitomeConv2d, QuantConv2d, densify
from crossnas.space import arch_to_network_dict
from crossnas.space.arch import ArchSpec, random_arch
from crossnas.supernet import Supernet, build_static

SHAPE = (1, 8, 8)
# widths 4 and 6 with wraps up to 4: partial chunks (6 = 4 + 2 channels for E = 2 and m = 4 -> 8)
SPACE = SpaceConfig(n_layers=3, widths=(4, 6), w_bits=(3, 5), a_bits=(4, 6), head={"fc": (12,)}, epitome=(1, 2, 4))


@functools.lru_cache(maxsize=1)
def _trained() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(SPACE, SHAPE, 10)
    rng = np.random.default_rng(0)
    net.train()
    with torch.no_grad():
        for _ in range(16):
            net(torch.randn(16, *SHAPE) * 2, random_arch(SPACE, rng, 8))
    return net.eval()


ARCHS = ["V6w5a6e2-v4w3a4e4-R6w5a4e2", "R6w5a6e4-R4w3a6-V6w3a4e2", "S-v6w5a4e4-S", "R4w3a4-S-V6w5a6"]


@pytest.mark.parametrize("arch", ARCHS)
def test_epitome_path_forwards_and_extracts_exactly(arch: str) -> None:
    net = _trained()
    spec = ArchSpec.from_string(arch)
    static = net.extract(spec)
    x = torch.randn(32, *SHAPE) * 1.5
    with torch.no_grad():
        y = net(x, spec)
        assert y.shape == (32, 10) and torch.isfinite(y).all()
        assert (y - static(x)).abs().max().item() <= 1e-5
    convs = [m for m in static.features.modules() if isinstance(m, QuantConv2d)]
    wrapped = [m for m in convs if isinstance(m, EpitomeConv2d)]
    # every conv of an e>1 block is an epitome except those whose wraps both clamp to 1 (none here)
    n_epi = sum((3 if layer.block == "residual" else 2) for layer in spec.layers
                if layer.block != "skip" and layer.epitome > 1)
    assert len(wrapped) == n_epi


def test_epitome_is_the_prefix_slice_of_the_shared_weight() -> None:
    net = _trained()
    spec = ArchSpec.from_string("V6w5a6e4-v6w3a4e2-S")
    static = net.extract(spec)
    blocks = list(net.blocks)
    shared = [blocks[0]["vgg"].conv1.weight, blocks[0]["vgg"].conv2.weight,
              blocks[1]["vgg_nopool"].conv1.weight, blocks[1]["vgg_nopool"].conv2.weight]
    convs = [static.features[0].conv1, static.features[0].conv2, static.features[1].conv1, static.features[1].conv2]
    shapes = [(2, 1), (2, 2), (3, 3), (3, 3)]  # m = 4: ceil(6/4) = 2 (image input: in_wrap 1); m = 2: 3
    for w, conv, (eo, ei) in zip(shared, convs, shapes, strict=True):
        assert isinstance(conv, EpitomeConv2d)
        assert conv.epitome_shape[:2] == (eo, ei)
        assert torch.equal(conv.weight, w[:eo, :ei])


def test_training_an_epitome_path_updates_only_its_epitome_slice() -> None:
    torch.manual_seed(1)
    net = Supernet(SPACE, SHAPE, 10).train()
    spec = ArchSpec.from_string("v6w5a6e2-S-S")
    torch.nn.functional.cross_entropy(net(torch.randn(8, *SHAPE), spec), torch.randint(0, 10, (8,))).backward()
    g = list(net.blocks)[0]["vgg_nopool"].conv2.weight.grad
    assert g is not None
    assert g[:3, :3].abs().sum() > 0  # E = ceil(6/2) x ceil(6/2)
    assert g[3:].abs().sum() == 0 and g[:, 3:].abs().sum() == 0  # the wrapped copies are not separate weights


def test_network_dict_of_a_subnet_carries_the_epitome_and_costs_fewer_crossbars() -> None:
    space = SpaceConfig(n_layers=3, widths=(32, 64), epitome=(1, 2, 4), head={"fc": ()})
    hw = HardwareConfig().with_updates(crossbar={"rows": 32, "cols": 32})
    dense = ArchSpec.from_string("R64w5a5-v64w5a5-V64w5a5")
    wrapped = ArchSpec.from_string("R64w5a5e2-v64w5a5e2-V64w5a5e2")
    nets = {s: arch_to_network_dict(s, space, SHAPE, 10) for s in (dense, wrapped)}
    convs = [ly for ly in nets[wrapped]["layers"] if ly["type"] == "conv"]
    assert all("epitome" in c for c in convs)
    assert convs[1]["epitome"] == {"out_wrap": 2, "in_wrap": 2} and convs[0]["epitome"] == {"out_wrap": 2, "in_wrap": 1}
    assert not any("epitome" in ly for ly in nets[dense]["layers"])
    xb = {s: cost_network(n, hw)["crossbars"] for s, n in nets.items()}
    assert xb[wrapped] * 2 < xb[dense]
    # the static model agrees with the dict: each EpitomeConv2d's wraps are the dict's
    static = build_static(wrapped, space, SHAPE, 10)
    mods = [m for m in static.features.modules() if isinstance(m, QuantConv2d)]
    got = [(m.out_wrap, m.in_wrap) if isinstance(m, EpitomeConv2d) else (1, 1) for m in mods]
    assert sorted(got) == sorted((c["epitome"]["out_wrap"], c["epitome"]["in_wrap"]) for c in convs)


def _fit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 40) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for i in range(steps):
        idx = torch.arange(i * 32, (i + 1) * 32) % len(x)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    net.eval()


@pytest.fixture(scope="module")
def epitome_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossnas.data import load_data
    from crossnas.supernet.modeldir import save_model_dir

    space = SpaceConfig(n_layers=2, widths=(8, 16), w_bits=(4,), a_bits=(4,), epitome=(1, 2),
                        head={"fc": (32,), "w_bits": 5, "a_bits": 5})
    data_cfg = DataConfig()
    data = load_data(data_cfg)
    spec = ArchSpec.from_string("R8w4a4e2-V16w4a4e2")
    torch.manual_seed(0)
    net = build_static(spec, space, data.input_shape, data.n_classes)
    _fit(net, data.train_x, data.train_y)
    path = tmp_path_factory.mktemp("epim") / "m"
    hw = HardwareConfig().with_updates(crossbar={"rows": 64}, device={"levels": 4}, dac={"bits": 2}, adc={"bits": 5})
    save_model_dir(path, net, spec=spec, space=space, input_shape=data.input_shape, n_classes=data.n_classes,
                   data_cfg=data_cfg, hardware=hw, metrics={})
    return path


def test_epitome_model_dir_round_trips(epitome_model_dir: Path) -> None:
    from crossnas.data import load_data
    from crossnas.supernet.modeldir import load_model_dir

    loaded = load_model_dir(epitome_model_dir)
    assert str(loaded.spec) == "R8w4a4e2-V16w4a4e2"
    assert "epitome" in json.loads((epitome_model_dir / "model.json").read_text())["space"]
    assert sum(isinstance(m, EpitomeConv2d) for m in loaded.module.modules()) == 5
    x = load_data(DataConfig()).test_x[:64]
    with torch.no_grad():
        assert loaded.module(x).argmax(1).float().std() > 0  # a trained, working network


def test_ideal_crossbars_reproduce_the_epitome_models_quantized_outputs(epitome_model_dir: Path) -> None:
    """The quantized accuracy path of an epitome model: on ideal crossbars its dense
    equivalent (every wrapped copy stored) computes exactly the fake-quantized network."""
    from crossnas.data import load_data
    from crossnas.pimsim import simulate_model
    from crossnas.pimsim.simulate import ideal_hardware
    from crossnas.supernet.modeldir import load_model_dir

    loaded = load_model_dir(epitome_model_dir)
    assert loaded.hardware is not None
    data = load_data(DataConfig())
    x = data.test_x[:96]
    sim = simulate_model(densify(loaded.module), ideal_hardware(loaded.hardware), calibration=data.train_x[:16])
    with torch.no_grad():
        assert torch.equal(sim(x).argmax(1), loaded.module(x).argmax(1))
        torch.testing.assert_close(sim(x), loaded.module(x), rtol=1e-4, atol=1e-4)


def test_evaluate_ideal_equals_quantized_for_an_epitome_model(
    epitome_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crossnas evaluate WINNER --ideal`` equals its quantized accuracy (the issue's check)."""
    from crossnas.cli.main import main

    code = main(["evaluate", str(epitome_model_dir), "--ideal", "--mc", "1", "--limit", "96", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    r = json.loads(out.strip().splitlines()[-1])
    assert r["pim_accuracy_mean"] == r["quantized_accuracy"] > 0.2


def test_output_wrap_path_forwards_extracts_and_maps_like_its_network_dict() -> None:
    """``e4o2`` (space.epitome_out_max: 2): the supernet path, its static model and the
    network dict agree, and each conv's epitome is the ``(ceil(C_out/2), ceil(C_in/4))`` slice."""
    space = SPACE.model_copy(update={"epitome_out_max": 2})
    SpaceConfig.model_validate(space.model_dump())  # a valid config
    torch.manual_seed(6)
    net = Supernet(space, SHAPE, 10)
    net.train()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for _ in range(8):
            net(torch.randn(16, *SHAPE) * 2, random_arch(space, rng, 8))
    net.eval()
    spec = ArchSpec.from_string("R6w5a6e4o2-v6w3a4e2-V6w5a4e4o2")
    static = net.extract(spec)
    x = torch.randn(16, *SHAPE)
    with torch.no_grad():
        assert (net(x, spec) - static(x)).abs().max().item() <= 1e-5
    wrapped = [m for m in static.features.modules() if isinstance(m, EpitomeConv2d)]
    got = [(m.out_wrap, m.in_wrap) for m in wrapped]
    assert got == [(2, 1), (2, 4), (2, 1), (2, 2), (2, 2), (2, 4), (2, 4)]  # residual conv1, conv2, shortcut, ...
    assert wrapped[1].epitome_shape[:2] == (3, 2)  # ceil(6/2) x ceil(6/4)
    convs = [ly for ly in arch_to_network_dict(spec, space, SHAPE, 10)["layers"] if ly["type"] == "conv"]
    assert [(c["epitome"]["out_wrap"], c["epitome"]["in_wrap"]) for c in convs] == got
    assert not random_arch(space, rng, 8).problems(space)  # sampled specs carry the cap's output wraps
