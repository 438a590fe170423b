"""Validated configuration (pydantic), checked once at the edge.

Everything below this package receives frozen models or plain arrays.
"""

from __future__ import annotations

from crossnas.config.hardware import (
    ADC_PRESETS,
    DAC_PRESETS,
    ADCConfig,
    ChipConfig,
    CrossbarConfig,
    DACConfig,
    DeviceConfig,
    HardwareConfig,
    PEConfig,
    TileConfig,
)
from crossnas.config.loading import apply_overrides, load_yaml_or_json, parse_set_options

__all__ = [
    "ADC_PRESETS",
    "DAC_PRESETS",
    "ADCConfig",
    "ChipConfig",
    "CrossbarConfig",
    "DACConfig",
    "DeviceConfig",
    "HardwareConfig",
    "PEConfig",
    "TileConfig",
    "apply_overrides",
    "load_yaml_or_json",
    "parse_set_options",
]
