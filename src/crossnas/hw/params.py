"""Numeric hardware parameters derived from a :class:`HardwareConfig`.

Everything the cost model needs, in MNSIM's units (ns, W, um^2), resolved once per
configuration (cached). Constants marked *MNSIM* are the values MNSIM-2.0's hardware
classes hold at their default technology nodes; they are documented facts about the
simulator we calibrate against, measured from its output where its tables are not
published (see ``docs/cost_model.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError

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


@dataclass(frozen=True)
class HwParams:
    """Resolved numbers of one hardware configuration (MNSIM units: ns, W, um^2)."""

    corrected: bool
    xr: int
    xc: int
    adc_num: int
    dac_num: int
    omux: int
    idemux: int
    m_out: int
    m_in: int
    adc_bits: int
    t_adc: float
    p_adc: float
    a_adc: float
    dac_bits: int
    t_dac: float
    p_dac: float
    a_dac: float
    read_ns: float
    cell_power: float  # W per read cell
    cell_area: float
    cell_bits: int
    polarity: int
    groups: int
    pes: int  # PEs per tile
    period: float  # digital period, ns
    bw_inter: float  # bit/ns
    bw_intra: float
    buf_cycle: float
    buf_width: int
    buf_area: float
    buf_p_read: float
    buf_p_write: float
    mesh_rows: int
    mesh_cols: int
    connection: int
    pe_area: float
    tile_area: float
    area_parts: dict  # per tile, by component


def _buffer_block(tech: int) -> str:
    if tech == 0:
        tech = 65
    if tech >= 90:
        return "90"
    if tech >= 65:
        return "65"
    return "45"


@lru_cache(maxsize=256)
def hw_params(hw: HardwareConfig) -> HwParams:
    """Resolves a configuration (cached; configurations are frozen and hashable).

    Raises:
        CrossnasError: combinations the model cannot cost (e.g. a crossbar narrower than
            one cell slice).
    """
    corrected = hw.cost_mode == "corrected"
    xr, xc = hw.crossbar.rows, hw.crossbar.cols
    adc_num, dac_num = hw.pe.adcs_per_subarray, hw.pe.dacs_per_subarray
    if corrected:
        adc_num, dac_num = min(adc_num, xc), min(dac_num, xr)
    omux = math.ceil(xc / adc_num)
    idemux = math.ceil(xr / dac_num)
    a = hw.adc
    d = hw.dac
    assert a.bits and a.sample_rate_GSps and a.power_W and a.area_um2
    assert d.bits and d.sample_rate_GSps and d.power_W and d.area_um2
    t_adc = (1.0 if a.bits == 1 else a.bits + 2) / a.sample_rate_GSps
    t_dac = (d.bits + 2) / d.sample_rate_GSps
    v = hw.device.read_voltage_V
    r_h, r_l = hw.device.hrs_ohm, hw.device.lrs_ohm
    r_eff = r_h * r_l / (0.67 * r_l + 0.33 * r_h)
    cell_power = 0.1 * v * v / r_eff  # MNSIM: 10 % of inputs at the read voltage
    if hw.device.type == "SRAM" and not corrected:
        pass
    block = _buffer_block(hw.chip.buffer_tech_nm)
    b_area, b_leak, b_rd, b_wr = BUFFER_TABLE[block]
    cycle = hw.chip.buffer_cycle_ns
    b_pr = b_rd / cycle + b_leak
    b_pw = b_wr / cycle + b_leak
    n = hw.tile.pes_per_tile
    g = hw.pe.groups
    pol = hw.pe.polarity
    # area of one PE (MNSIM charges every PE of every tile in full)
    a_xbar = pol * g * (xr * xc * hw.device.cell_area_um2 + ROW_DRIVER_AREA_UM2 * xr)
    a_adc = g * adc_num * a.area_um2
    a_dac = g * dac_num * d.area_um2
    a_dig_pe = g * adc_num * (SHIFTREG_AREA_UM2 + REG_AREA_UM2 + MUX_AREA.get(omux, MUX_AREA_DEFAULT)) + g * dac_num * (
        REG_AREA_UM2 + DEMUX_AREA.get(idemux, DEMUX_AREA_DEFAULT)
    )
    a_joint = (n - 1) * g * adc_num * JOINT_AREA_UM2
    parts = {
        "crossbar": n * a_xbar,
        "ADC": n * a_adc,
        "DAC": n * a_dac,
        "digital": n * a_dig_pe + a_joint,
        "buffer": (n + 1) * b_area,
        "pooling": POOL_AREA_UM2,
    }
    pe_area = a_xbar + a_adc + a_dac + a_dig_pe + b_area
    return HwParams(
        corrected=corrected, xr=xr, xc=xc, adc_num=adc_num, dac_num=dac_num, omux=omux, idemux=idemux,
        m_out=mux_class(omux), m_in=mux_class(idemux), adc_bits=a.bits, t_adc=t_adc, p_adc=a.power_W,
        a_adc=a.area_um2, dac_bits=d.bits, t_dac=t_dac, p_dac=d.power_W, a_dac=d.area_um2,
        read_ns=hw.device.read_latency_ns, cell_power=cell_power, cell_area=hw.device.cell_area_um2,
        cell_bits=hw.device.cell_bits, polarity=pol, groups=g, pes=n, period=1000.0 / hw.chip.digital_frequency_MHz,
        bw_inter=hw.tile.inter_tile_bandwidth_Gbps, bw_intra=hw.tile.intra_tile_bandwidth_Gbps, buf_cycle=cycle,
        buf_width=hw.chip.buffer_bitwidth, buf_area=b_area, buf_p_read=b_pr, buf_p_write=b_pw,
        mesh_rows=hw.chip.tile_rows, mesh_cols=hw.chip.tile_cols, connection=hw.chip.tile_connection,
        pe_area=pe_area, tile_area=sum(parts.values()), area_parts=parts,
    )


# Output-mux / input-demux area per converter (um^2) by multiplexing degree; fitted to MNSIM's
# digital area (its mux tables are not published in the reference).
MUX_AREA: dict[int, float] = {}
MUX_AREA_DEFAULT = 0.0
DEMUX_AREA: dict[int, float] = {}
DEMUX_AREA_DEFAULT = 0.0


def check_mappable(hp: HwParams, kernel: int, where: str) -> None:
    if hp.xr < kernel * kernel:
        raise CrossnasError(
            f"crossbar.rows: {hp.xr} rows cannot hold one {kernel}x{kernel} kernel slice of {where}; "
            f"need at least {kernel * kernel}"
        )
