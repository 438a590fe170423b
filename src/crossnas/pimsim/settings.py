"""Simulator settings and the crossbar parameters resolved from a hardware config.

:class:`PimSimSettings` holds the knobs that exist for simulation only (they are
not part of :class:`~crossnas.config.hardware.HardwareConfig` because the cost model
does not read them). :class:`CrossbarSpec` is the frozen, validated subset of the
hardware configuration the simulator needs, in the simulator's units (conductances
in units of one cell level step, see :mod:`crossnas.pimsim.mapping`; noise figures as
fractions of the top level's conductance ``G_max``).
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
        calibration_samples: without ``calibration_x``, :func:`~crossnas.pimsim.pim_accuracy`
            calibrates "scale" ADC ranges on the first this-many scored inputs (>= 1);
            callers that score held-out data pass training images instead.
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
        read_rows: rows read at once (``crossbar.subarray_rows``, ``None`` = ``rows``);
            each group of ``read_rows`` rows of a crossbar has its own ADC reads.
        prog_sigma: state-independent programming error, sigma as a fraction of
            ``G_max`` (``prog_noise_pct / 100``).
        read_sigma: per-read noise, sigma as a fraction of ``G_max`` (``read_noise_pct / 100``).
        noise_model: ``"gaussian"`` or ``"pcm"`` (state-dependent PCM statistics).
        lognormal: programming errors are lognormal (multiplicative) instead of normal.
        drift_nu, drift_nu_std: mean and spread of the drift exponent (``gaussian`` model).
        drift_t0_s: reference time of the drift law, seconds after programming.
        time_s: time of the read after programming (0: right after programming).
        drift_compensation: per-layer global drift compensation gain.
        clip_gmax: programmed conductances are clipped at ``G_max`` (when the
            state-independent, PCM or lognormal programming model is on).
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
    read_rows: int | None = None
    prog_sigma: float = 0.0
    read_sigma: float = 0.0
    noise_model: str = "gaussian"
    lognormal: bool = False
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0_s: float = 20.0
    time_s: float = 0.0
    drift_compensation: bool = True
    clip_gmax: bool = True

    @property
    def levels(self) -> int:
        """Conductance levels per cell."""
        return 1 << self.cell_bits

    @property
    def sub_rows(self) -> int:
        """Rows read at once (one ADC read per column per group of this many rows)."""
        return self.rows if self.read_rows is None else min(self.read_rows, self.rows)

    @property
    def g_top(self) -> float:
        """Conductance of the top level, ``G_max``, in level steps: ``g_min + levels - 1``."""
        return self.g_min + self.levels - 1

    @property
    def pcm(self) -> bool:
        return self.noise_model == "pcm"

    @property
    def new_programming_model(self) -> bool:
        """Whether the programming error goes beyond MNSIM's relative variation (the
        state-independent term, the PCM polynomial or a lognormal shape): then
        conductances are clipped at ``G_max`` (``clip_gmax``)."""
        return self.prog_sigma > 0 or self.pcm or (self.lognormal and self.sigma > 0)

    @property
    def drifts(self) -> bool:
        """Whether the device drifts (``pcm``, or a non-zero drift exponent)."""
        return self.pcm or self.drift_nu > 0 or self.drift_nu_std > 0

    @property
    def read_time_effects(self) -> bool:
        """Whether the conductances at the read time differ from the programmed ones
        (drift and, for ``pcm``, the accumulated 1/f noise)."""
        return self.time_s > 0 and self.drifts

    @property
    def read_noise(self) -> bool:
        """Whether every read carries fresh noise."""
        return self.read_sigma > 0

    @property
    def deterministic(self) -> bool:
        """True when no random non-ideality is sampled (every MC run is identical)."""
        random_drift = self.read_time_effects and (self.pcm or self.drift_nu_std > 0)
        return (
            self.sigma == 0
            and self.p_hrs == 0
            and self.p_lrs == 0
            and self.prog_sigma == 0
            and not self.pcm
            and not self.read_noise
            and not random_drift
        )

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
        if dev.noise_model not in ("gaussian", "pcm"):
            raise CrossnasError(
                f"device.noise_model must be 'gaussian' or 'pcm', got {dev.noise_model!r}"
            )
        if dev.distribution not in ("normal", "lognormal"):
            raise CrossnasError(
                f"device.distribution must be 'normal' or 'lognormal', got {dev.distribution!r}"
            )
        sub = hardware.crossbar.subarray_rows
        if sub is not None and not 1 <= int(sub) <= int(hardware.crossbar.rows):
            raise CrossnasError(
                f"crossbar.subarray_rows must be between 1 and crossbar.rows "
                f"({hardware.crossbar.rows}), got {sub}"
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
            read_rows=sub,
            prog_sigma=float(dev.prog_noise_pct) / 100.0,
            read_sigma=float(dev.read_noise_pct) / 100.0,
            noise_model=str(dev.noise_model),
            lognormal=dev.distribution == "lognormal",
            drift_nu=float(dev.drift_nu),
            drift_nu_std=float(dev.drift_nu_std),
            drift_t0_s=float(dev.drift_t0_s),
            time_s=float(dev.time_s),
            drift_compensation=bool(dev.drift_compensation),
            clip_gmax=bool(dev.clip_gmax),
        )
