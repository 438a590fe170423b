"""HardwareConfig: MNSIM defaults, presets, validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crossnas.config.hardware import ADC_PRESETS, DAC_PRESETS, HardwareConfig
from crossnas.errors import format_validation_error


def test_defaults_follow_mnsim_simconfig() -> None:
    hw = HardwareConfig()
    assert (hw.crossbar.rows, hw.crossbar.cols) == (256, 256)
    assert hw.adc.choice == 6 and hw.adc.bits == 6
    assert hw.dac.choice == 1 and hw.dac.bits == 1
    assert hw.pe.polarity == 2 and hw.pe.adcs_per_subarray == 128
    assert hw.tile.pes_per_tile == 4
    assert hw.chip.n_tiles == 64 * 64
    assert hw.device.cell_bits == 1


@pytest.mark.parametrize("choice", sorted(ADC_PRESETS))
def test_adc_choice_fills_preset_values(choice: int) -> None:
    adc = HardwareConfig.model_validate({"adc": {"choice": choice}}).adc
    bits, area, power, rate = ADC_PRESETS[choice]
    assert (adc.bits, adc.area_um2, adc.power_W, adc.sample_rate_GSps) == (bits, area, power, rate)


@pytest.mark.parametrize("choice", sorted(DAC_PRESETS))
def test_dac_choice_fills_preset_values(choice: int) -> None:
    dac = HardwareConfig.model_validate({"dac": choice}).dac
    assert dac.bits == DAC_PRESETS[choice][0]


def test_explicit_field_overrides_preset() -> None:
    adc = HardwareConfig.model_validate({"adc": {"choice": 3, "power_W": 1e-3}}).adc
    assert adc.bits == 8 and adc.power_W == 1e-3


def test_conversion_time_rule() -> None:
    hw = HardwareConfig.model_validate({"adc": {"choice": 3}})
    assert hw.adc.conversion_ns == pytest.approx(10 / 1.1)
    assert HardwareConfig.model_validate({"adc": {"choice": 8}}).adc.conversion_ns == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"adc": {"choice": 12}}, "adc"),
        ({"crossbar": {"rows": 0}}, "crossbar.rows"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"device": {"levels": 3}}, "power of two"),
        ({"device": {"hrs_ohm": 1e3, "lrs_ohm": 1e4}}, "hrs_ohm"),
        ({"pe": {"polarity": 3}}, "pe.polarity"),
        ({"adc": {"bits": 17}}, "adc"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(data: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        HardwareConfig.model_validate(data)
    msg = format_validation_error(info.value, "hw.yaml")
    assert "\n" not in msg
    assert needle in msg
    assert msg.startswith("hw.yaml: ")


def test_with_updates_revalidates() -> None:
    hw = HardwareConfig().with_updates(crossbar={"rows": 64, "cols": 64})
    assert hw.crossbar.rows == 64
    with pytest.raises(ValidationError):
        HardwareConfig().with_updates(crossbar={"rows": -5})


def test_with_updates_new_preset_replaces_old_figures() -> None:
    hw = HardwareConfig().with_updates(adc={"choice": 3}, dac={"choice": 2})
    assert (hw.adc.bits, hw.adc.power_W) == (8, 4.0e-3)
    assert hw.dac.bits == 2
    hw2 = HardwareConfig().with_updates(adc={"choice": 3, "power_W": 1e-3})
    assert (hw2.adc.bits, hw2.adc.power_W) == (8, 1e-3)
