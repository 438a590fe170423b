"""Building a validated :class:`HardwareConfig` from a base and override mappings."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from crossnas.config.hardware import HardwareConfig
from crossnas.config.loading import apply_overrides
from crossnas.devices import retype
from crossnas.errors import CrossnasError, format_validation_error


def build_hardware(
    base: HardwareConfig | None, overrides: dict[str, Any] | None, sets: dict[str, Any] | None = None,
    source: str = "hardware",
) -> HardwareConfig:
    """``base`` (default: MNSIM defaults) with ``overrides`` then ``sets`` deep-merged in.

    A preset ``choice`` given for the ADC/DAC replaces the base's converter figures
    (so ``adc.choice=3`` on top of a config with ADC 6 really gives ADC 3).

    Raises:
        CrossnasError: unknown keys, wrong types or values (one line naming the field).
    """
    data = (base or HardwareConfig()).model_dump()
    for ov in (overrides or {}, sets or {}):
        if not isinstance(ov, dict):
            raise CrossnasError(f"{source}: must be a mapping of sections, got {type(ov).__name__}")
        for conv in ("adc", "dac"):
            sec = ov.get(conv)
            if isinstance(sec, dict) and "choice" in sec:
                data[conv] = {k: v for k, v in data[conv].items() if k not in ("bits", "area_um2", "power_W", "sample_rate_GSps")}
            elif isinstance(sec, int) and not isinstance(sec, bool):
                ov = {**ov, conv: {"choice": sec}}
                data[conv] = {k: v for k, v in data[conv].items() if k not in ("bits", "area_um2", "power_W", "sample_rate_GSps")}
        dev = ov.get("device")
        if isinstance(dev, dict) and "type" in dev:
            data["device"] = retype(data["device"], str(dev["type"]))
        data = apply_overrides(data, ov)
    try:
        return HardwareConfig.model_validate(data)
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, source)) from None
