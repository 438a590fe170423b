"""Hardware configuration of an analog PIM accelerator, by level of the stack.

Defaults equal MNSIM-2.0's shipped ``SimConfig.ini`` (commit ca39ccb). Units follow
the field names: ``_nm`` nanometres, ``_um2`` square micrometres, ``_ns``
nanoseconds, ``_V`` volts, ``_ohm`` ohms, ``_W`` watts, ``_GSps`` giga-samples per
second, ``_Gbps`` gigabits per second, ``_MHz`` megahertz, ``_KB`` kilobytes.

The sections mirror the layers the seed papers co-design: ``device`` (cell),
``crossbar`` (array), ``adc``/``dac`` (interface), ``pe`` (processing element),
``tile`` and ``chip`` (memory hierarchy and system).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossnas.devices import DEVICE_PRESETS, retype

# MNSIM-2.0's interface tables (ADC.py / DAC.py of the reference snapshot): facts, in our units.
# choice: (bits, area_um2, power_W, sample_rate_GSps)
ADC_PRESETS: dict[int, tuple[int, float, float, float]] = {
    1: (10, 1600.0, 6.92e-3, 1.5),
    2: (8, 1200.0, 2.0e-3, 1.28),
    3: (8, 1650.0, 4.0e-3, 1.1),
    4: (6, 580.0, 1.26e-3, 1.0),
    5: (8, 1650.0, 4.0e-3, 1.1),
    6: (6, 1650.0, 1.26e-3, 1.0),
    7: (4, 500.0, 0.7e-3, 1.0),
    8: (1, 1.0, 1.629e-6, 1.0),
}
DAC_PRESETS: dict[int, tuple[int, float, float, float]] = {
    1: (1, 0.166, 3.9e-6, 1.0),
    2: (2, 0.332, 7.8e-6, 1.0),
    3: (3, 0.664, 1.56e-5, 1.0),
    4: (4, 1.328, 3.12e-5, 1.0),
    5: (6, 5.312, 1.248e-4, 1.0),
    6: (8, 21.248, 0.4992, 1.0),  # MNSIM's table value (probably missing a 1e-3), kept for parity
    7: (1, 0.166, 3.9e-6, 1.0),
}


_CONVERTER_FIGURES = ("bits", "area_um2", "power_W", "sample_rate_GSps")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class DeviceConfig(_Section):
    """The memory cell: a technology preset (``type``) whose figures any field overrides.

    Fields not given take the values of the ``type``'s preset in :mod:`crossnas.devices`
    (the default ``RRAM`` preset is MNSIM-2.0's ``SimConfig.ini`` cell). The noise and drift
    fields are read by the PIM accuracy simulator, the figures (area, voltage, latency,
    energy, leakage, resistances, levels) by the cost model.
    """

    type: Literal["RRAM", "PCM", "FeFET", "SRAM"] = "RRAM"
    """Cell technology (:data:`crossnas.devices.DEVICE_PRESETS`). MNSIM's ``Device_Type = NVM`` is RRAM."""
    tech_nm: int = Field(130, gt=0, le=1000)
    """Device technology node (MNSIM ``Device_Tech``; scales the row drivers in ``corrected`` mode)."""
    cell_area_um2: float = Field(1.44, gt=0, le=1e4)
    """Area of one cell (MNSIM ``Device_Area``)."""
    read_voltage_V: float = Field(0.15, gt=0, le=10)
    """Read voltage of an active input (MNSIM ``Read_Voltage`` upper level)."""
    read_latency_ns: float = Field(3.16, gt=0, le=1e6)
    """One crossbar read (MNSIM ``Read_Latency``)."""
    read_energy_J: float = Field(1.12e-15, ge=0, le=1e-6)
    """Energy of one cell read with an active input (``corrected`` mode; MNSIM derives the
    crossbar power from the read voltage and resistances instead and ignores it)."""
    leakage_W: float = Field(0.0, ge=0, le=1e-3)
    """Static power per cell (volatile cells such as SRAM; ``corrected`` mode)."""
    levels: int = Field(2, ge=2, le=256)
    """Conductance levels per cell; bits per cell = log2(levels). Must be a power of two."""
    hrs_ohm: float = Field(1e6, gt=0, le=1e15)
    """High-resistance state (MNSIM ``Device_Resistance`` first value)."""
    lrs_ohm: float = Field(1e4, gt=0, le=1e15)
    """Low-resistance state (MNSIM ``Device_Resistance`` second value)."""
    variation_pct: float = Field(0.0, ge=0, le=100)
    """Programming error relative to each cell's own conductance, σ in percent (MNSIM's
    ``Device_Variation``; 0 = none)."""
    prog_noise_pct: float = Field(0.0, ge=0, le=100)
    """State-independent programming error, σ in percent of G_max (``gaussian`` noise model)."""
    read_noise_pct: float = Field(0.0, ge=0, le=100)
    """Per-read noise, σ in percent of G_max (``gaussian`` noise model)."""
    noise_model: Literal["gaussian", "pcm"] = "gaussian"
    """``gaussian``: the three σ above; ``pcm``: aihwkit-style state-dependent PCM statistics."""
    distribution: Literal["normal", "lognormal"] = "normal"
    """Shape of the programming error: additive normal, or lognormal (multiplicative, never negative)."""
    drift_nu: float = Field(0.0, ge=0, le=1)
    """Mean drift exponent ν of ``G(t) = G(t0) (t/t0)^-ν`` (``pcm``: the state-dependent model instead)."""
    drift_nu_std: float = Field(0.0, ge=0, le=1)
    """Cell-to-cell spread of ν."""
    drift_t0_s: float = Field(20.0, gt=0, le=1e9)
    """Reference time t0 of the drift law (seconds after programming)."""
    time_s: float = Field(0.0, ge=0, le=1e10)
    """Time since programming at which the chip is read (0 = right after programming, no drift)."""
    drift_compensation: bool = True
    """Global drift compensation: a per-layer digital gain calibrated at read time (as aihwkit does)."""
    clip_gmax: bool = True
    """Programmed conductances are clipped to [0, G_max + G_min]."""
    stuck_at_hrs: float = Field(0.0, ge=0, le=1)
    """Fraction of cells stuck at HRS (MNSIM ``Device_SAF`` first value, there in percent)."""
    stuck_at_lrs: float = Field(0.0, ge=0, le=1)
    """Fraction of cells stuck at LRS (MNSIM ``Device_SAF`` second value, there in percent)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_preset(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        kind = data.get("type", "RRAM")
        if kind not in DEVICE_PRESETS:
            return data  # the Literal check reports it
        return {**DEVICE_PRESETS[kind].as_fields(), **data}

    @field_validator("levels")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"levels must be a power of two (2, 4, 8, 16, ...), got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> DeviceConfig:
        if self.hrs_ohm <= self.lrs_ohm:
            raise ValueError(f"hrs_ohm ({self.hrs_ohm}) must exceed lrs_ohm ({self.lrs_ohm})")
        if self.stuck_at_hrs + self.stuck_at_lrs > 1:
            raise ValueError("stuck_at_hrs + stuck_at_lrs must be at most 1")
        top = DEVICE_PRESETS[self.type].max_levels
        if self.levels > top:
            raise ValueError(f"levels: a {self.type} cell holds at most {top} levels, got {self.levels}")
        return self

    @property
    def cell_bits(self) -> int:
        """Bits stored per cell."""
        return int(math.log2(self.levels))


class CrossbarConfig(_Section):
    """One crossbar array."""

    rows: int = Field(256, gt=0, le=4096)
    """Word lines (MNSIM ``Xbar_Size`` first value)."""
    cols: int = Field(256, gt=0, le=4096)
    """Bit lines (MNSIM ``Xbar_Size`` second value)."""
    subarray_rows: int | None = Field(None, gt=0)
    """Rows read at once (MNSIM ``Subarray_Size``); ``None`` means all rows."""
    cell_type: Literal["1T1R", "0T1R"] = "1T1R"
    """Cell structure (MNSIM ``Cell_Type``)."""

    @model_validator(mode="after")
    def _check(self) -> CrossbarConfig:
        if self.subarray_rows is not None and self.subarray_rows > self.rows:
            raise ValueError(f"subarray_rows ({self.subarray_rows}) must not exceed rows ({self.rows})")
        return self

    @property
    def effective_subarray_rows(self) -> int:
        return self.subarray_rows if self.subarray_rows is not None else self.rows


class _Converter(_Section):
    choice: int | None = None
    bits: int | None = Field(None, ge=1, le=16)
    area_um2: float | None = Field(None, gt=0)
    power_W: float | None = Field(None, gt=0)
    sample_rate_GSps: float | None = Field(None, gt=0)

    PRESETS: ClassVar[dict[int, tuple[int, float, float, float]]] = {}
    DEFAULT_CHOICE: ClassVar[int] = 1

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: object) -> object:
        presets = cls.PRESETS
        if isinstance(data, int):
            data = {"choice": data}
        if not isinstance(data, dict):
            return data
        d = dict(data)
        explicit = [k for k in ("bits", "area_um2", "power_W", "sample_rate_GSps") if d.get(k) is not None]
        choice = d.get("choice")
        if choice is None and len(explicit) < 4:
            choice = cls.DEFAULT_CHOICE
        if choice is not None:
            if not isinstance(choice, int) or isinstance(choice, bool) or choice not in presets:
                raise ValueError(f"choice must be one of {sorted(presets)} (MNSIM presets), got {choice!r}")
            bits, area, power, rate = presets[choice]
            for key, val in (("bits", bits), ("area_um2", area), ("power_W", power), ("sample_rate_GSps", rate)):
                if d.get(key) is None:
                    d[key] = val
            d["choice"] = choice
        return d

    @property
    def conversion_ns(self) -> float:
        """Latency of one conversion: (bits + 2) / rate, or 1 / rate for a 1-bit sense amp."""
        assert self.bits is not None and self.sample_rate_GSps is not None
        cycles = 1 if self.bits == 1 else self.bits + 2
        return cycles / self.sample_rate_GSps


class ADCConfig(_Converter):
    """Analog-to-digital converter: a MNSIM preset ``choice`` (1-8), or explicit figures.

    Explicit fields override the preset's. ``range_mode`` is used by the PIM accuracy
    simulator only: ``"scale"`` calibrates each layer's full scale from data,
    ``"fixed"`` uses the physical maximum of the partial sum.
    """

    PRESETS = ADC_PRESETS
    DEFAULT_CHOICE = 6
    ideal: bool = False
    """Accuracy simulation only: an ADC that neither clips nor rounds."""
    range_mode: Literal["scale", "fixed"] = "scale"


class DACConfig(_Converter):
    """Digital-to-analog converter: a MNSIM preset ``choice`` (1-7), or explicit figures."""

    PRESETS = DAC_PRESETS
    DEFAULT_CHOICE = 1


class PEConfig(_Section):
    """Processing element: crossbar groups with shared converters."""

    polarity: Literal[1, 2] = 2
    """Arrays per weight: 2 = positive and negative crossbars, 1 = one array with offset encoding."""
    groups: int = Field(1, ge=1, le=64)
    """Crossbar groups per PE (MNSIM ``Group_Num``)."""
    adcs_per_subarray: int = Field(128, ge=1, le=4096)
    """ADCs per subarray (MNSIM ``ADC_Num``); columns beyond this share ADCs and serialize."""
    dacs_per_subarray: int = Field(128, ge=1, le=4096)
    """DACs per subarray (MNSIM ``DAC_Num``)."""


class TileConfig(_Section):
    """Tile: PEs, pooling and buffers (the memory hierarchy CiMNet searches)."""

    pe_rows: int = Field(2, ge=1, le=64)
    pe_cols: int = Field(2, ge=1, le=64)
    """PEs per tile = pe_rows x pe_cols (MNSIM ``PE_Num``)."""
    pooling_units: int = Field(64, ge=1, le=4096)
    """Pooling units per tile (``corrected`` mode: pooling time, area and power scale with it)."""
    pooling_tech_nm: int = Field(65, gt=0, le=1000)
    """Pooling block technology (``corrected`` mode: area and power scale with its square)."""
    pe_input_buffer_KB: float | None = Field(None, gt=0, le=1e6)
    """PE input (line) buffer per PE; ``None`` sizes it to the network's largest need
    (``corrected`` mode: area and leakage follow the size; a smaller buffer re-fetches inputs)."""
    output_buffer_KB: float | None = Field(None, gt=0, le=1e6)
    """Tile output buffer; ``None`` sizes it to the network's largest need (``corrected`` mode:
    a smaller buffer spills outputs to the global buffer)."""
    intra_tile_bandwidth_Gbps: float = Field(1024.0, gt=0, le=1e7)
    inter_tile_bandwidth_Gbps: float = Field(20.0, gt=0, le=1e7)

    @property
    def pes_per_tile(self) -> int:
        return self.pe_rows * self.pe_cols


class ChipConfig(_Section):
    """Chip / system level."""

    tile_rows: int = Field(64, ge=1, le=1024)
    tile_cols: int = Field(64, ge=1, le=1024)
    """Tiles per chip = tile_rows x tile_cols (MNSIM ``Tile_Num``). A network needing more
    tiles than the chip has is refused."""
    digital_frequency_MHz: float = Field(500.0, gt=0, le=1e5)
    buffer_type: Literal["SRAM", "DRAM", "RRAM"] = "SRAM"
    """Technology of the on-chip buffers (MNSIM ``Buffer_Choice`` 1/2/3; ``corrected`` mode:
    cycle, energy per bit, leakage and area from ``crossnas.hw.params.BUFFER_TECH``)."""
    buffer_tech_nm: int = Field(90, gt=0, le=1000)
    buffer_bitwidth: int = Field(64, ge=8, le=1024)
    buffer_cycle_ns: float | None = Field(None, gt=0, le=1e6)
    """One buffer word access; ``None``: MNSIM's hard-coded 20 ns in ``mnsim`` mode, the
    technology's cycle in ``corrected`` mode."""
    global_buffer_KB: float | None = Field(None, gt=0, le=1e7)
    """Global buffer (residual branches, layer-to-layer spills); ``None`` sizes it to the
    network's need (``corrected`` mode; an overflow goes to off-chip DRAM)."""
    global_buffer_bandwidth_Gbps: float = Field(256.0, gt=0, le=1e7)
    """Global buffer port bandwidth (``corrected`` mode)."""
    dram_bandwidth_Gbps: float = Field(102.4, gt=0, le=1e7)
    """Off-chip DRAM bandwidth (``corrected`` mode; 102.4 Gbit/s = one LPDDR4 x32 channel)."""
    dram_energy_pJ_per_bit: float = Field(20.0, gt=0, le=1e4)
    """Off-chip DRAM access energy (``corrected`` mode; Horowitz, ISSCC 2014: ~20 pJ/bit)."""
    tile_connection: int = Field(2, ge=0, le=3)
    """Tile placement order (MNSIM ``Tile_Connection``; 0 row-major, 1 snake, 2 spiral, 3 zigzag = snake)."""

    @property
    def n_tiles(self) -> int:
        return self.tile_rows * self.tile_cols


class EpitomeConfig(_Section):
    """How layers stored as epitomes (EPIM) are read (cost model and simulator)."""

    datapath: Literal["sum", "reactivate"] = "sum"
    """Input wrapping: ``sum`` adds the ``in_wrap`` input-channel chunks digitally before the
    DAC (``ceil(log2 in_wrap)`` more input bits, so more DAC cycles); ``reactivate`` reads the
    crossbar once per chunk and adds the results after the ADC (``in_wrap`` x the reads)."""


class HardwareConfig(_Section):
    """A complete PIM accelerator description. Defaults = MNSIM-2.0's ``SimConfig.ini``."""

    device: DeviceConfig = DeviceConfig()
    crossbar: CrossbarConfig = CrossbarConfig()
    adc: ADCConfig = ADCConfig()
    dac: DACConfig = DACConfig()
    pe: PEConfig = PEConfig()
    tile: TileConfig = TileConfig()
    chip: ChipConfig = ChipConfig()
    epitome: EpitomeConfig = EpitomeConfig()
    cost_mode: Literal["mnsim", "corrected"] = "mnsim"
    """``mnsim`` reproduces MNSIM-2.0's totals, quirks included; ``corrected`` fixes them
    (ADCs capped at the crossbar's columns, bits per cell honoured, ...)."""

    @model_validator(mode="after")
    def _check(self) -> HardwareConfig:
        if self.device.cell_bits > 16:
            raise ValueError("device.levels: at most 2**16 levels")
        return self

    def with_updates(self, **sections: Any) -> HardwareConfig:
        """A copy with some fields of some sections (a dict) or top-level fields (a value) replaced, re-validated."""
        data = self.model_dump()
        for name, values in sections.items():
            if name not in data:
                raise ValueError(f"unknown hardware section {name!r}")
            if name in ("adc", "dac") and isinstance(values, dict) and "choice" in values:
                # a new preset replaces the old preset's figures (explicit ones in ``values`` still win)
                data[name] = {k: v for k, v in data[name].items() if k not in _CONVERTER_FIGURES}
            if name == "device" and isinstance(values, dict) and "type" in values:
                data[name] = retype(data[name], str(values["type"]))  # the new type's preset fills the rest
            if isinstance(data[name], dict):
                data[name].update(values)
            else:
                data[name] = values
        return HardwareConfig.model_validate(data)
