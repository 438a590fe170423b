"""Numeric hardware parameters derived from a :class:`HardwareConfig`.

Everything the cost-model kernel needs (:mod:`crossnas.hw.kernel`), in MNSIM's units (ns,
W, um^2, nJ, bits), resolved once per configuration (cached) into one vector. Constants marked *MNSIM* are the values MNSIM-2.0's hardware
classes hold at their default technology nodes; they are documented facts about the
simulator we calibrate against, measured from its output where its tables are not
published (see ``docs/cost_model.md``).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np

from crossnas.config.hardware import DAC_PRESETS, HardwareConfig
from crossnas.errors import CrossnasError

log = logging.getLogger(__name__)

# MNSIM constants (45/65 nm digital, 90 nm SRAM buffers, 65 nm pooling).
BUFFER_TABLE = {
    # block: (area_um2, leakage_W, dyn_read_nJ, dyn_write_nJ) of a <= 2 KB, 64-bit SRAM buffer
    "90": (40580.0, 1.006e-3, 0.00757, 0.01314),
    "65": (69915.0, 4.332e-3, 0.00823, 0.00984),
    "45": (26390.0, 3.068e-3, 0.00367, 0.00432),
}
POOL_AREA_UM2 = 91917.0  # 64 pooling units at 65 nm, in every tile
POOL_POWER_W = 3.082e-3
POOL_CYCLE_NS = 100.0
SUM_CYCLE_NS = 10.0
DEMUX_NS = 0.27933
MUX_NS = 0.032744
SCALE45 = (45.0 / 65.0) ** 2
JOINT_AREA_UM2 = 353.76 * SCALE45
JOINT_POWER_W = 2.64e-4 * SCALE45
SHIFTREG_AREA_UM2 = 1.42
SHIFTREG_POWER_W = 8.1e-7
REG_AREA_UM2 = 1.4256 * SCALE45
REG_POWER_W = 18.8e-9 * SCALE45
ROW_DRIVER_AREA_UM2 = 1150.0


def mux_class(n: int) -> int:
    """MNSIM's decoder delay multiplier for an n-way (de)multiplexer."""
    if n <= 7:
        return 2
    if n <= 63:
        return 3
    return 4


def mux_transistors(n: int) -> int:
    """Transistor count class MNSIM uses for an n-way multiplexer's power."""
    if n <= 2:
        return 8
    if n <= 4:
        return 24
    if n <= 8:
        return 72
    if n <= 16:
        return 216
    if n <= 32:
        return 648
    return 1944


# ``corrected`` mode: on-chip buffer technologies at 65 nm (scaled with chip.buffer_tech_nm:
# area with its square, energy and cycle linearly). Orders of magnitude of the kind CACTI 7
# (SRAM, eDRAM) and NVSim (RRAM) report for KB-sized buffers with a 64-bit port; we did not
# run those tools, the table is documented in docs/cost_model.md.
# type: (cycle_ns, read_pJ_per_bit, write_pJ_per_bit, leakage_uW_per_KB, area_um2_per_KB)
BUFFER_TECH: dict[str, tuple[float, float, float, float, float]] = {
    "SRAM": (1.0, 0.10, 0.12, 20.0, 6000.0),
    "DRAM": (2.0, 0.08, 0.08, 2.0, 1500.0),
    "RRAM": (5.0, 0.15, 2.00, 0.1, 800.0),
}
DIGITAL_REF_PERIOD_NS = 2.0
"""``corrected`` mode: digital energy per operation = MNSIM's component power x this period
(500 MHz, MNSIM's default clock), whatever the clock."""
INPUT_ACTIVITY = 0.5
"""``corrected`` mode: fraction of crossbar rows driven by a non-zero input digit."""
CORRECTED_DAC_POWER_W = {6: 4.992e-4}
"""``corrected`` mode: MNSIM's 8-bit DAC preset lists 0.4992 W, 1000x its own 2x-per-bit
progression (3.9 uW at 1 bit ... 124.8 uW at 6 bits); corrected mode uses 0.4992 mW."""
MNSIM_BUFFER_CYCLE_NS = 20.0
REF_TECH_NM = 65.0

# Settings MNSIM-2.0's behaviour-level model does not read: in ``mnsim`` mode a value other than
# the default prints one warning line (once per setting and process).
_MNSIM_IGNORED: tuple[tuple[str, str, object], ...] = (
    ("device", "tech_nm", 130), ("device", "read_energy_J", 1.12e-15), ("device", "leakage_W", 0.0),
    ("crossbar", "subarray_rows", None), ("crossbar", "cell_type", "1T1R"), ("tile", "pooling_units", 64),
    ("tile", "pooling_tech_nm", 65), ("tile", "pe_input_buffer_KB", None), ("tile", "output_buffer_KB", None),
    ("chip", "buffer_type", "SRAM"), ("chip", "global_buffer_KB", None), ("chip", "global_buffer_bandwidth_Gbps", 256.0),
    ("chip", "dram_bandwidth_Gbps", 102.4), ("chip", "dram_energy_pJ_per_bit", 20.0),
)
_WARNED: set[str] = set()


def ignored_in_mnsim_mode(hw: HardwareConfig) -> list[str]:
    """Dotted names of the settings of ``hw`` that ``mnsim`` mode ignores (non-default values)."""
    out = []
    for sec, name, default in _MNSIM_IGNORED:
        v = getattr(getattr(hw, sec), name)
        if name == "subarray_rows" and v is not None and v == hw.crossbar.rows:
            continue
        if v != default:
            out.append(f"{sec}.{name}")
    return out


def _warn_ignored(hw: HardwareConfig) -> None:
    for name in ignored_in_mnsim_mode(hw):
        if name not in _WARNED:
            _WARNED.add(name)
            log.warning("%s: not modelled in cost_mode=mnsim (MNSIM-2.0 ignores it); use cost_mode=corrected", name)


def _refuse(hw: HardwareConfig) -> None:
    """Settings the ``corrected`` model cannot honour: one-line errors."""
    if hw.crossbar.cell_type != "1T1R":
        raise CrossnasError(
            f"crossbar.cell_type: {hw.crossbar.cell_type} is not modelled in cost_mode=corrected "
            "(selector-less arrays need a sneak-path model); allowed: 1T1R"
        )


def tile_area_parts(hw: HardwareConfig) -> dict[str, float]:
    """Area of one tile by component (um^2); ``corrected`` mode: without the buffers (sized per network)."""
    return _resolve(hw)[1]


def hw_vector(hw: HardwareConfig) -> np.ndarray:
    """The kernel's hardware vector (columns :data:`crossnas.hw.kernel.HW_FIELDS`), cached."""
    return _resolve(hw)[0]


@lru_cache(maxsize=4096)
def _resolve(hw: HardwareConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Resolves a configuration (cached; configurations are frozen and hashable).

    Raises:
        CrossnasError: settings the chosen mode cannot honour.
    """
    from crossnas.hw.kernel import HW_FIELDS

    corrected = hw.cost_mode == "corrected"
    if corrected:
        _refuse(hw)
    else:
        _warn_ignored(hw)
    xr, xc = hw.crossbar.rows, hw.crossbar.cols
    adc_num, dac_num = hw.pe.adcs_per_subarray, hw.pe.dacs_per_subarray
    if corrected:
        adc_num, dac_num = min(adc_num, xc), min(dac_num, xr)
    omux = math.ceil(xc / adc_num)
    idemux = math.ceil(xr / dac_num)
    a, d, dev = hw.adc, hw.dac, hw.device
    assert a.bits and a.sample_rate_GSps and a.power_W and a.area_um2
    assert d.bits and d.sample_rate_GSps and d.power_W and d.area_um2
    t_adc = a.conversion_ns
    t_dac = (d.bits + 2) / d.sample_rate_GSps
    p_dac = d.power_W
    if corrected and d.choice in CORRECTED_DAC_POWER_W and p_dac == DAC_PRESETS[d.choice][2]:
        p_dac = CORRECTED_DAC_POWER_W[d.choice]
    v = dev.read_voltage_V
    r_h, r_l = dev.hrs_ohm, dev.lrs_ohm
    r_eff = r_h * r_l / (0.67 * r_l + 0.33 * r_h)
    cell_power = 0.1 * v * v / r_eff  # MNSIM: 10 % of inputs at the read voltage
    # corrected mode, one cell read with an active input: conduction V^2 G t at the mean of the
    # LRS and HRS conductances, plus the access energy read_energy_J (line charging, sensing)
    g_avg = 0.5 * (1.0 / r_l + 1.0 / r_h)
    e_cell = (dev.read_energy_J + v * v * g_avg * dev.read_latency_ns * 1e-9) * 1e9  # nJ
    n = hw.tile.pes_per_tile
    g = hw.pe.groups
    pol = hw.pe.polarity
    tech = float(hw.chip.buffer_tech_nm)
    if corrected:
        cyc_t, e_r, e_w, leak_kb, area_kb = BUFFER_TECH[hw.chip.buffer_type]
        s = tech / REF_TECH_NM
        cycle = hw.chip.buffer_cycle_ns if hw.chip.buffer_cycle_ns is not None else cyc_t * s
        b_area = b_pr = b_pw = 0.0
        pool_s = hw.tile.pooling_tech_nm / REF_TECH_NM
        pool_cycle = POOL_CYCLE_NS * pool_s
        pool_power = POOL_POWER_W * hw.tile.pooling_units / 64 * pool_s
        pool_area = POOL_AREA_UM2 * hw.tile.pooling_units / 64 * pool_s * pool_s
        drv = ROW_DRIVER_AREA_UM2 * (dev.tech_nm / 130.0) ** 2
        chan = g * pol  # every crossbar has its own converters
    else:
        block = _buffer_block(hw.chip.buffer_tech_nm)
        b_area, b_leak, b_rd, b_wr = BUFFER_TABLE[block]
        cycle = hw.chip.buffer_cycle_ns if hw.chip.buffer_cycle_ns is not None else MNSIM_BUFFER_CYCLE_NS
        b_pr = b_rd / cycle + b_leak
        b_pw = b_wr / cycle + b_leak
        pool_cycle, pool_power, pool_area = POOL_CYCLE_NS, POOL_POWER_W, POOL_AREA_UM2
        drv = ROW_DRIVER_AREA_UM2
        chan = g
        cyc_t = e_r = e_w = leak_kb = area_kb = s = 0.0
    a_xbar = pol * g * (xr * xc * dev.cell_area_um2 + drv * xr)
    a_adc = chan * adc_num * a.area_um2
    a_dac = chan * dac_num * d.area_um2
    a_dig_pe = chan * adc_num * (SHIFTREG_AREA_UM2 + REG_AREA_UM2 + MUX_AREA.get(omux, MUX_AREA_DEFAULT)) + chan * dac_num * (
        REG_AREA_UM2 + DEMUX_AREA.get(idemux, DEMUX_AREA_DEFAULT)
    )
    a_joint = (n - 1) * g * adc_num * JOINT_AREA_UM2
    parts = {
        "crossbar": n * a_xbar,
        "ADC": n * a_adc,
        "DAC": n * a_dac,
        "digital": n * a_dig_pe + a_joint,
        "buffer": (n + 1) * b_area,
        "pooling": pool_area,
        "dram": 0.0,
    }
    tile_area = sum(parts.values())
    kb_bits = 8192.0
    vals = {
        "xr": xr, "xc": xc, "adc_num": adc_num, "dac_num": dac_num, "omux": omux, "idemux": idemux,
        "m_out": mux_class(omux), "m_in": mux_class(idemux), "adc_bits": a.bits, "t_adc": t_adc,
        "p_adc": a.power_W, "dac_bits": d.bits, "t_dac": t_dac, "p_dac": p_dac, "read_ns": dev.read_latency_ns,
        "cell_power": cell_power, "cell_bits": dev.cell_bits, "polarity": pol, "groups": g, "npe": n,
        "period": 1000.0 / hw.chip.digital_frequency_MHz, "bw_inter": hw.tile.inter_tile_bandwidth_Gbps,
        "bw_intra": hw.tile.intra_tile_bandwidth_Gbps, "cyc": cycle, "width": hw.chip.buffer_bitwidth,
        "buf_p_read": b_pr, "buf_p_write": b_pw, "tile_area": tile_area, "mesh_rows": hw.chip.tile_rows,
        "mesh_cols": hw.chip.tile_cols, "connection": hw.chip.tile_connection, "corrected": float(corrected),
        "mux_p_out": mux_transistors(omux) * 1.2e-8, "mux_p_in": mux_transistors(idemux) * 1.2e-8,
        "pool_cycle": pool_cycle, "pool_units": hw.tile.pooling_units if corrected else 64, "pool_power": pool_power,
        "pool_area": pool_area, "subarray": hw.crossbar.effective_subarray_rows, "levels": dev.levels,
        "e_cell": e_cell, "e_conv": a.power_W * t_adc, "adc_rate": a.sample_rate_GSps,
        "e_dac": p_dac * t_dac, "period_e": DIGITAL_REF_PERIOD_NS, "leak_cell": dev.leakage_W,
        "e_buf_r": e_r * s * 1e-3, "e_buf_w": e_w * s * 1e-3, "buf_leak": leak_kb * 1e-6 / kb_bits,
        "buf_area": area_kb * s * s / kb_bits,
        "inbuf": (hw.tile.pe_input_buffer_KB or 0.0) * kb_bits, "outbuf": (hw.tile.output_buffer_KB or 0.0) * kb_bits,
        "gbuf": (hw.chip.global_buffer_KB or 0.0) * kb_bits, "bw_gbuf": hw.chip.global_buffer_bandwidth_Gbps,
        "bw_dram": hw.chip.dram_bandwidth_Gbps, "e_dram": hw.chip.dram_energy_pJ_per_bit * 1e-3,
        "adc_area": a.area_um2, "tile_fixed_area": tile_area - parts["buffer"],
        "epi_reactivate": float(hw.epitome.datapath == "reactivate"),
    }
    vec = np.array([float(vals[f]) for f in HW_FIELDS])
    vec.setflags(write=False)
    return vec, parts


# Output-mux / input-demux area per converter (um^2) by multiplexing degree; fitted to MNSIM's
# digital area (its mux tables are not published in the reference).
MUX_AREA: dict[int, float] = {}
MUX_AREA_DEFAULT = 0.0
DEMUX_AREA: dict[int, float] = {}
DEMUX_AREA_DEFAULT = 0.0



KERNEL_CONSTS = np.array([DEMUX_NS, MUX_NS, SUM_CYCLE_NS, SHIFTREG_POWER_W, REG_POWER_W, JOINT_POWER_W, INPUT_ACTIVITY])
"""Model constants passed to the kernel (never baked into its cached compilation)."""


def _buffer_block(tech: int) -> str:
    """MNSIM's buffer table row for a technology node (0 = its default 65 nm)."""
    if tech == 0:
        tech = 65
    if tech >= 90:
        return "90"
    if tech >= 65:
        return "65"
    return "45"
