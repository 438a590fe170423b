"""Epitome convolutions on simulated crossbars: only E stored, both input datapaths."""

from __future__ import annotations

import pytest
import torch

from crossnas.config.hardware import HardwareConfig
from crossnas.pimsim import ideal_hardware, pim_layers, simulate_model
from crossnas.quant.epitome import EpitomeConv2d


def _layer(c_in: int, c_out: int, m: int, seed: int = 0) -> EpitomeConv2d:
    torch.manual_seed(seed)
    layer = EpitomeConv2d(c_in, c_out, 3, padding=1, out_wrap=m, in_wrap=m, w_bits=5, a_bits=4)
    with torch.no_grad():
        layer.act_clip.fill_(2.0)
        layer.clip_initialised.fill_(True)
    return layer.eval()


def _hw(datapath: str, **adc: object) -> HardwareConfig:
    return HardwareConfig.model_validate({"crossbar": {"rows": 64, "cols": 64}, "dac": {"choice": 1},
                                          "adc": adc or {"choice": 2}, "epitome": {"datapath": datapath}})


@pytest.mark.parametrize("datapath", ["sum", "reactivate"])
@pytest.mark.parametrize(("c_in", "c_out", "m"), [(8, 8, 2), (7, 10, 4), (6, 6, 1)])
def test_ideal_crossbars_equal_the_quantized_epitome_layer(datapath: str, c_in: int, c_out: int, m: int) -> None:
    """Partial chunks included: ideal converters and devices reproduce the digital layer."""
    layer = _layer(c_in, c_out, m)
    x = torch.rand(3, c_in, 6, 6) * 2.5
    sim = simulate_model(layer, ideal_hardware(_hw(datapath)))
    with torch.no_grad():
        torch.testing.assert_close(sim(x), layer(x), rtol=1e-5, atol=1e-5)
    (pim,) = list(pim_layers(sim))
    e_out, e_in, k, _ = layer.epitome_shape
    assert (pim.plan.k, pim.plan.n) == (e_in * k * k, e_out)  # only E is on the crossbars


def test_sum_datapath_reads_more_input_bits_reactivate_reads_per_chunk() -> None:
    """The same layer, finite 8-bit ADC: sum = one read of a (4 + 1)-bit folded input per pixel,
    reactivate = one 4-bit read per chunk; both stay close to the digital layer."""
    layer = _layer(8, 8, 2)
    x = torch.rand(2, 8, 5, 5) * 2.0
    sims = {d: simulate_model(layer, _hw(d), calibration=x) for d in ("sum", "reactivate")}
    (s,), (r,) = (list(pim_layers(sims[d])) for d in ("sum", "reactivate"))
    assert s.plan.a_bits == 5 and r.plan.a_bits == 4
    assert s.plan.n_input_cycles == r.plan.n_input_cycles + 1  # 1-bit DAC: one more cycle
    with torch.no_grad():
        ref = layer(x)
        ys, yr = sims["sum"](x), sims["reactivate"](x)
    assert not torch.equal(ys, yr)  # different partial sums through the ADC
    for y in (ys, yr):
        assert (y - ref).norm() / ref.norm() < 0.05
