"""Simulator settings and the crossbar parameters resolved from a hardware config.

:class:`PimSimSettings` holds the knobs that exist for simulation only (they are
not part of :class:`~crossnas.config.hardware.HardwareConfig` because the cost model
does not read them). :class:`CrossbarSpec` is the frozen, validated subset of the
hardware configuration the simulator needs, in the simulator's units (conductances
in units of one cell level step, see :mod:`crossnas.pimsim.mapping`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError


@dataclass(frozen=True)
class PimSimSettings:
    """Simulation-only knobs (defaults are what ``crossnas evaluate`` uses).

    Attributes:
        adc_scale_percentile: ``adc.range_mode="scale"`` only: the ADC full scale of a
            layer is this percentile (0 < p <= 100) of the partial sums observed on the
            calibration data (100 = the maximum), rounded up to a power of two.
        calibration_samples: :func:`~crossnas.pimsim.pim_accuracy` calibrates "scale"
            ADC ranges on the first this-many inputs (>= 1).
        chunk_elements: target number of float32 partial sums held at once per layer
            (memory ~ 4-8 bytes x this); larger is faster up to cache effects.
        force_general_path: never take the algebraic fast path (tests, benchmarks).
    """

    adc_scale_percentile: float = 100.0
    calibration_samples: int = 64
    chunk_elements: int = 1 << 23
    force_general_path: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.adc_scale_percentile <= 100:
            raise CrossnasError(
                f"pimsim adc_scale_percentile must be in (0, 100], got {self.adc_scale_percentile}"
            )
        if self.calibration_samples < 1:
            raise CrossnasError(
                f"pimsim calibration_samples must be >= 1, got {self.calibration_samples}"
            )
        if self.chunk_elements < 1024:
            raise CrossnasError(f"pimsim chunk_elements must be >= 1024, got {self.chunk_elements}")


@dataclass(frozen=True)
class CrossbarSpec:
    """Hardware parameters of the simulation.

    Attributes:
        rows: crossbar word lines (the reduction tile size).
        cols: crossbar bit lines (column tiling; no numerical effect, reported only).
        cell_bits: bits per cell, ``log2(levels)``.
        dac_bits: input bits applied per cycle.
        adc_bits: ADC resolution; ``None`` = ideal ADC (neither clips nor rounds).
        range_mode: ``"scale"`` (calibrated per layer) or ``"fixed"`` (physical maximum).
        polarity: 2 = positive and negative arrays, 1 = one array with offset encoding.
        g_min: conductance of a level-0 cell in level steps,
            ``(levels - 1) / (HRS/LRS - 1)``; 0 for an infinite on/off ratio.
        sigma: relative conductance variation (``variation_pct / 100``).
        p_hrs: fraction of cells stuck at HRS (level 0).
        p_lrs: fraction of cells stuck at LRS (level ``levels - 1``).
    """

    rows: int
    cols: int
    cell_bits: int
    dac_bits: int
    adc_bits: int | None
    range_mode: str
    polarity: int
    g_min: float
    sigma: float
    p_hrs: float
    p_lrs: float

    @property
    def levels(self) -> int:
        """Conductance levels per cell."""
        return 1 << self.cell_bits

    @property
    def deterministic(self) -> bool:
        """True when no random non-ideality is sampled (every MC run is identical)."""
        return self.sigma == 0 and self.p_hrs == 0 and self.p_lrs == 0

    @classmethod
    def from_hardware(cls, hardware: HardwareConfig) -> CrossbarSpec:
        """Resolves and checks the simulation parameters of ``hardware``.

        Raises:
            CrossnasError: levels not a power of two, missing converter bits, or an
                unknown ADC range mode.
        """
        dev = hardware.device
        levels = int(dev.levels)
        if levels < 2 or levels & (levels - 1):
            raise CrossnasError(
                f"device.levels must be a power of two (2, 4, 8, ...), got {levels}"
            )
        if hardware.dac.bits is None or hardware.dac.bits < 1:
            raise CrossnasError(f"dac.bits must be an integer >= 1, got {hardware.dac.bits}")
        if not hardware.adc.ideal and (hardware.adc.bits is None or hardware.adc.bits < 1):
            raise CrossnasError(
                f"adc.bits must be an integer >= 1 (or adc.ideal: true), got {hardware.adc.bits}"
            )
        if hardware.adc.range_mode not in ("scale", "fixed"):
            raise CrossnasError(
                f"adc.range_mode must be 'scale' or 'fixed', got {hardware.adc.range_mode!r}"
            )
        if hardware.pe.polarity not in (1, 2):
            raise CrossnasError(f"pe.polarity must be 1 or 2, got {hardware.pe.polarity}")
        if not dev.hrs_ohm > dev.lrs_ohm > 0:
            raise CrossnasError(
                f"device.hrs_ohm ({dev.hrs_ohm}) must exceed device.lrs_ohm ({dev.lrs_ohm}) > 0"
            )
        ratio = dev.hrs_ohm / dev.lrs_ohm
        g_min = 0.0 if math.isinf(ratio) else (levels - 1) / (ratio - 1)
        return cls(
            rows=int(hardware.crossbar.rows),
            cols=int(hardware.crossbar.cols),
            cell_bits=levels.bit_length() - 1,
            dac_bits=int(hardware.dac.bits),
            adc_bits=None if hardware.adc.ideal else int(hardware.adc.bits),  # type: ignore[arg-type]
            range_mode=hardware.adc.range_mode,
            polarity=int(hardware.pe.polarity),
            g_min=g_min,
            sigma=float(dev.variation_pct) / 100.0,
            p_hrs=float(dev.stuck_at_hrs),
            p_lrs=float(dev.stuck_at_lrs),
        )
