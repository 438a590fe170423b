"""MNSIM export: the SimConfig.ini we write reads back to the same hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.export.mnsim import hardware_to_mnsim_ini, network_to_mnsim
from crossnas.hw.mnsim_ini import hardware_from_mnsim_ini
from crossnas.space import ArchSpec, arch_to_network_dict


@pytest.mark.parametrize(
    "updates",
    [
        {},
        {"crossbar": {"rows": 64, "cols": 64}, "adc": {"choice": 3}, "dac": {"choice": 2}},
        {"pe": {"polarity": 1, "adcs_per_subarray": 32}, "tile": {"pe_rows": 4, "pe_cols": 4}},
        {"device": {"levels": 4, "variation_pct": 2.0}, "chip": {"digital_frequency_MHz": 1000}},
        {"adc": {"bits": 5, "area_um2": 900.0, "power_W": 1e-3, "sample_rate_GSps": 1.2}},
    ],
)
def test_ini_round_trip(tmp_path: Path, updates: dict) -> None:
    hw = HardwareConfig().with_updates(**updates) if updates else HardwareConfig()
    p = tmp_path / "SimConfig.ini"
    p.write_text(hardware_to_mnsim_ini(hw))
    back = hardware_from_mnsim_ini(p)
    x, bx = hw.crossbar, back.crossbar
    assert (bx.rows, bx.cols, bx.effective_subarray_rows, bx.cell_type) == (x.rows, x.cols, x.effective_subarray_rows, x.cell_type)
    for section in ("pe", "tile", "dac"):
        assert getattr(back, section) == getattr(hw, section), section
    assert (back.adc.bits, back.adc.power_W, back.adc.area_um2) == (hw.adc.bits, hw.adc.power_W, hw.adc.area_um2)
    assert back.adc.sample_rate_GSps == pytest.approx(hw.adc.sample_rate_GSps)
    assert back.device.levels == hw.device.levels
    assert back.device.variation_pct == hw.device.variation_pct
    assert back.chip.digital_frequency_MHz == hw.chip.digital_frequency_MHz


def test_network_split_into_layers_and_quantize_config() -> None:
    spec = ArchSpec.from_string("V32w5a7-R64w9a5")
    net = arch_to_network_dict(spec, SpaceConfig(n_layers=2), (1, 8, 8), 10)
    out = network_to_mnsim(net)
    assert len(out["layers"]) == len(out["quantize_config"]) == len(net["layers"])
    assert all("weight_bit" not in layer for layer in out["layers"])
    assert out["quantize_config"][0] == {"weight_bit": 5, "activation_bit": 7, "point_shift": -2}
