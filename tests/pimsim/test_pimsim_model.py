"""Whole networks on simulated crossbars: block types, Monte-Carlo accuracy."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.pimsim import (
    PimLayer,
    PimSimSettings,
    ideal_hardware,
    pim_accuracy,
    pim_layers,
    simulate_model,
)
from crossnas.quant import QuantConv2d, QuantLinear

GENERAL = PimSimSettings(force_general_path=True)


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, bits: tuple[int, int], signed: bool) -> None:
        super().__init__()
        wb, ab = bits
        self.conv1 = QuantConv2d(cin, cout, 3, padding=1, w_bits=wb, a_bits=ab, signed_input=signed)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = QuantConv2d(cout, cout, 3, padding=1, w_bits=wb, a_bits=ab)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = QuantConv2d(cin, cout, 1, w_bits=wb, a_bits=ab, signed_input=signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(
            self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.shortcut(x)
        )


def _vgg(cin: int, cout: int, bits: tuple[int, int], signed: bool, pool: bool) -> nn.Sequential:
    wb, ab = bits
    mods: dict[str, nn.Module] = {
        "conv1": QuantConv2d(cin, cout, 3, padding=1, w_bits=wb, a_bits=ab, signed_input=signed),
        "bn1": nn.BatchNorm2d(cout),
        "relu1": nn.ReLU(),
        "conv2": QuantConv2d(cout, cout, 3, padding=1, w_bits=wb, a_bits=ab),
        "bn2": nn.BatchNorm2d(cout),
        "relu2": nn.ReLU(),
    }
    if pool:
        mods["pool"] = nn.MaxPool2d(2, 2)
    return nn.Sequential(OrderedDict(mods))


def _net(first: str, seed: int = 0) -> nn.Module:
    """Every block type: the first block (reading the signed input) is ``first``;
    then vgg (pool), skip (identity), residual, vgg_nopool, and the head."""
    torch.manual_seed(seed)
    blocks: list[nn.Module] = []
    if first == "residual":
        blocks.append(_Residual(1, 8, (9, 7), True))
    else:
        blocks.append(_vgg(1, 8, (9, 7), True, pool=first == "vgg"))
    blocks += [
        _vgg(8, 12, (5, 9), False, pool=True),
        nn.Identity(),
        _Residual(12, 8, (7, 5), False),
        _vgg(8, 8, (7, 7), False, pool=False),
    ]
    head = nn.Sequential(
        nn.AdaptiveMaxPool2d(2),
        nn.Flatten(),
        QuantLinear(8 * 4, 20, w_bits=9, a_bits=9),
        nn.ReLU(),
        nn.Dropout(0.2),
        QuantLinear(20, 10, w_bits=9, a_bits=9),
    )
    net = nn.Sequential(*blocks, head)
    net.train()
    with torch.no_grad():  # calibrate clips and BN statistics
        for i in range(3):
            net(torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(100 + i)))
    return net.eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("first", ["vgg", "vgg_nopool", "residual"])
@pytest.mark.parametrize(
    ("polarity", "rows", "dac"), [(2, 16, 1), (1, 64, 2), (2, 128, 2), (1, 32, 1)]
)
def test_ideal_network_of_every_block_type_reproduces_fake_quant(
    first: str, polarity: int, rows: int, dac: int
) -> None:
    net = _net(first)
    ref = net(X)
    hw = ideal_hardware(
        HardwareConfig().with_updates(
            pe={"polarity": polarity}, crossbar={"rows": rows}, dac={"bits": dac}
        )
    )
    fast = simulate_model(net, hw)
    n_layers = sum(isinstance(m, (QuantConv2d, QuantLinear)) for m in net.modules())
    assert len(list(pim_layers(fast))) == n_layers == (12 if first == "residual" else 11)
    assert torch.equal(fast(X), ref)
    general = simulate_model(net, hw, settings=GENERAL)
    assert _rel(general(X), ref) <= 1e-4


def test_build_static_networks_reproduce_fake_quant() -> None:
    supernet = pytest.importorskip("crossnas.supernet")
    from crossnas.config.space import SpaceConfig
    from crossnas.space.arch import random_arch

    space = SpaceConfig(n_layers=3, widths=(8, 16))
    rng = np.random.default_rng(0)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for i in range(3):
        spec = random_arch(space, rng, 8)
        net = supernet.build_static(spec, space, (1, 8, 8), 10)
        net.train()
        with torch.no_grad():
            net(torch.randn(16, 1, 8, 8))
        net.eval()
        ref = net(x)
        hw = ideal_hardware(
            HardwareConfig().with_updates(pe={"polarity": 1 + i % 2}, crossbar={"rows": 32})
        )
        assert torch.equal(simulate_model(net, hw)(x), ref)
        assert _rel(simulate_model(net, hw, settings=GENERAL)(x), ref) <= 1e-4


def test_simulated_model_is_deterministic_per_seed() -> None:
    net = _net("residual")
    hw = HardwareConfig().with_updates(
        device={"variation_pct": 5, "stuck_at_hrs": 0.01}, crossbar={"rows": 64}
    )
    a = simulate_model(net, hw, seed=3, calibration=X)(X)
    b = simulate_model(net, hw, seed=3, calibration=X)(X)
    c = simulate_model(net, hw, seed=4, calibration=X)(X)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small quantized MLP trained on scikit-learn's digits (test half returned)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    net = nn.Sequential(
        QuantLinear(64, 48, w_bits=6, a_bits=6, signed_input=True),
        nn.ReLU(),
        QuantLinear(48, 10, w_bits=6, a_bits=6),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = x[:1000], y[:1000]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only wait on a busy CPU
    try:
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval(), x[1000:], y[1000:]


def test_ideal_pim_accuracy_equals_quantized_accuracy(
    digits_mlp: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    net, x, y = digits_mlp
    res = pim_accuracy(net, ideal_hardware(HardwareConfig()), x, y, mc_runs=3, seed=1)
    assert res.quantized_accuracy > 0.85
    assert (
        res.mean == res.quantized_accuracy
        and res.runs == [res.quantized_accuracy] * 3
        and res.std == 0.0
    )
    assert not net.training


def test_accuracy_falls_on_average_as_variation_grows(
    digits_mlp: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    net, x, y = digits_mlp
    base = HardwareConfig().with_updates(
        crossbar={"rows": 64}, adc={"bits": 8}, device={"levels": 4}
    )
    means = []
    for var in (0.0, 10.0, 25.0, 50.0, 100.0):
        res = pim_accuracy(
            net, base.with_updates(device={"variation_pct": var}), x, y, mc_runs=4, seed=0
        )
        assert len(res.runs) == 4
        if var > 0:
            assert res.std > 0 and len(set(res.runs)) > 1
        means.append(res.mean)
    assert all(b <= a + 0.01 for a, b in zip(means, means[1:], strict=False)), means
    assert means[0] - means[-1] > 0.05 and means[1] - means[-1] > 0.05, means


def test_pim_accuracy_is_reproducible_and_seed_dependent(
    digits_mlp: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    net, x, y = digits_mlp
    hw = HardwareConfig().with_updates(
        device={"variation_pct": 30, "stuck_at_lrs": 0.02}, crossbar={"rows": 32}
    )
    a = pim_accuracy(net, hw, x, y, mc_runs=3, seed=5)
    b = pim_accuracy(net, hw, x, y, mc_runs=3, seed=5, batch_size=100)
    c = pim_accuracy(net, hw, x, y, mc_runs=3, seed=6)
    assert a.runs == b.runs and a.runs != c.runs
    assert a.std == pytest.approx(float(np.std(a.runs, ddof=1)))


def test_deterministic_hardware_runs_once(
    digits_mlp: tuple[nn.Module, torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    import crossnas.pimsim.simulate as sim_mod

    calls = []
    real = sim_mod.simulate_model

    def counting(*args: object, **kwargs: object) -> nn.Module:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sim_mod, "simulate_model", counting)
    net, x, y = digits_mlp
    res = pim_accuracy(net, HardwareConfig().with_updates(adc={"bits": 2}), x, y, mc_runs=5)
    assert len(calls) == 1 and len(res.runs) == 5 and len(set(res.runs)) == 1
    assert res.mean < res.quantized_accuracy  # a 2-bit ADC on 256-row crossbars loses accuracy


def test_pim_accuracy_rejects_bad_arguments(
    digits_mlp: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    net, x, y = digits_mlp
    with pytest.raises(CrossnasError, match="mc_runs"):
        pim_accuracy(net, HardwareConfig(), x, y, mc_runs=0)
    with pytest.raises(CrossnasError, match="seed"):
        simulate_model(net, HardwareConfig(), seed=-1)


def test_layers_are_on_the_module_device_and_in_eval_mode() -> None:
    net = _net("vgg")
    sim = simulate_model(net, HardwareConfig())
    assert not sim.training
    for layer in pim_layers(sim):
        assert isinstance(layer, PimLayer)
        assert layer.g_blocks.device == next(net.parameters()).device
