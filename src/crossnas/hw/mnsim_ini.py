"""Reading an MNSIM-2.0 ``SimConfig.ini`` into a :class:`HardwareConfig`.

Only the keys that enter the cost model (or the accuracy simulator) are read; the
others are ignored, as MNSIM ignores them at ``Simulation_Level 0``. Values of ``0``
mean "MNSIM default" where MNSIM says so.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError, format_validation_error

_SECTIONS = ("Device level", "Crossbar level", "Interface level", "Process element level", "Digital module",
             "Tile level", "Architecture level")


def _nums(raw: str, key: str, path: Path, n: int | None = None) -> list[float]:
    try:
        vals = [float(x) for x in raw.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise CrossnasError(f"{path}: {key} = {raw!r} is not a number list") from None
    if not vals or (n is not None and len(vals) != n):
        raise CrossnasError(f"{path}: {key} = {raw!r}: expected {n or 'at least one'} comma-separated number(s)")
    return vals


def _int(v: float, key: str, path: Path) -> int:
    if v != int(v):
        raise CrossnasError(f"{path}: {key} = {v} must be an integer")
    return int(v)


def hardware_from_mnsim_ini(path: str | Path, base: HardwareConfig | None = None) -> HardwareConfig:
    """Parses ``SimConfig.ini``.

    Args:
        path: the ini file.
        base: configuration whose fields the ini does not set (default: MNSIM defaults).

    Raises:
        CrossnasError: missing file, unparsable ini, a malformed or out-of-range value
            (one line naming the key).
    """
    p = Path(path)
    if not p.is_file():
        raise CrossnasError(f"--mnsim-ini: file not found: {p}")
    cp = configparser.ConfigParser(strict=True, inline_comment_prefixes=None)
    try:
        cp.read_string(p.read_text(encoding="utf-8"), source=str(p))
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CrossnasError(f"{p}: not a valid MNSIM SimConfig.ini: {first}") from None
    if not any(cp.has_section(s) for s in _SECTIONS):
        raise CrossnasError(f"{p}: no MNSIM section found; expected sections like {list(_SECTIONS[:3])}")

    def get(sec: str, key: str) -> str | None:
        if cp.has_section(sec) and cp.has_option(sec, key):
            return cp.get(sec, key).strip()
        return None

    d: dict[str, Any] = (base or HardwareConfig()).model_dump()
    dev, xb, adc, dac, pe, tile, chip = (d[k] for k in ("device", "crossbar", "adc", "dac", "pe", "tile", "chip"))

    def num(sec: str, key: str) -> float | None:
        raw = get(sec, key)
        return None if raw is None else _nums(raw, key, p, 1)[0]

    if (dtype := get("Device level", "Device_Type")) is not None:
        if dtype.upper() not in ("NVM", "SRAM"):
            raise CrossnasError(f"{p}: Device_Type = {dtype!r}; allowed: NVM, SRAM")
        dev["type"] = "RRAM" if dtype.upper() == "NVM" else "SRAM"
    if (v := num("Device level", "Device_Tech")) is not None:
        dev["tech_nm"] = _int(v, "Device_Tech", p)
    if (v := num("Device level", "Device_Area")) is not None:
        dev["cell_area_um2"] = v
    if (raw := get("Device level", "Read_Voltage")) is not None:
        dev["read_voltage_V"] = max(_nums(raw, "Read_Voltage", p))
    if (v := num("Device level", "Read_Latency")) is not None:
        dev["read_latency_ns"] = v
    if (v := num("Device level", "Read_Energy")) is not None:
        dev["read_energy_J"] = v
    if (v := num("Device level", "Device_Level")) is not None:
        dev["levels"] = _int(v, "Device_Level", p)
    if get("Device level", "Device_Resistance") is None and dev["levels"] != 2 and get("Device level", "Device_Level"):
        raise CrossnasError(
            f"{p}: Device_Level = {dev['levels']} needs a Device_Resistance list with {dev['levels']} values (HRS first)"
        )
    if (raw := get("Device level", "Device_Resistance")) is not None:
        res = _nums(raw, "Device_Resistance", p)
        if len(res) < 2:
            raise CrossnasError(f"{p}: Device_Resistance needs at least HRS and LRS values")
        if len(res) != dev["levels"]:
            raise CrossnasError(
                f"{p}: Device_Resistance has {len(res)} values but Device_Level = {dev['levels']} (MNSIM needs one per level)"
            )
        dev["hrs_ohm"], dev["lrs_ohm"] = res[0], res[-1]
    if (v := num("Device level", "Device_Variation")) is not None:
        dev["variation_pct"] = v
    if (raw := get("Device level", "Device_SAF")) is not None:
        saf = _nums(raw, "Device_SAF", p, 2)
        dev["stuck_at_hrs"], dev["stuck_at_lrs"] = saf[0] / 100.0, saf[1] / 100.0

    if (raw := get("Crossbar level", "Xbar_Size")) is not None:
        size = _nums(raw, "Xbar_Size", p, 2)
        xb["rows"], xb["cols"] = _int(size[0], "Xbar_Size", p), _int(size[1], "Xbar_Size", p)
    if (v := num("Crossbar level", "Subarray_Size")) is not None:
        xb["subarray_rows"] = _int(v, "Subarray_Size", p) if v > 0 else None
    if (cell_type := get("Crossbar level", "Cell_Type")) is not None:
        xb["cell_type"] = cell_type

    for conv, sec_name, dd in (("ADC", "Interface level", adc), ("DAC", "Interface level", dac)):
        choice = num(sec_name, f"{conv}_Choice")
        explicit = {
            "area_um2": num(sec_name, f"{conv}_Area"),
            "bits": num(sec_name, f"{conv}_Precision"),
            "power_W": num(sec_name, f"{conv}_Power"),
            "sample_rate_GSps": num(sec_name, f"{conv}_Sample_Rate"),
        }
        if choice is not None:
            c = _int(choice, f"{conv}_Choice", p)
            for k in ("bits", "area_um2", "power_W", "sample_rate_GSps"):
                dd[k] = None
            dd["choice"] = None if c == -1 else c
        for k, v in explicit.items():
            if v is not None and v > 0:
                dd[k] = _int(v, f"{conv}_Precision", p) if k == "bits" else v
        if conv == "ADC" and dd.get("sample_rate_GSps") and explicit["sample_rate_GSps"]:
            # MNSIM's ADC_Sample_Rate is in samples/s
            if explicit["sample_rate_GSps"] > 1e3:
                dd["sample_rate_GSps"] = explicit["sample_rate_GSps"] / 1e9

    if (v := num("Process element level", "Xbar_Polarity")) is not None:
        pe["polarity"] = _int(v, "Xbar_Polarity", p)
    if (v := num("Process element level", "Group_Num")) is not None:
        pe["groups"] = max(_int(v, "Group_Num", p), 1)
    for key, fld, lim in (("ADC_Num", "adcs_per_subarray", xb["cols"]), ("DAC_Num", "dacs_per_subarray", xb["rows"])):
        if (v := num("Process element level", key)) is not None:
            n = _int(v, key, p)
            pe[fld] = n if n > 0 else min(128, lim)
    if (v := num("Digital module", "Digital_Frequency")) is not None:
        chip["digital_frequency_MHz"] = v
    if (raw := get("Tile level", "PE_Num")) is not None:
        pn = _nums(raw, "PE_Num", p, 2)
        r_, c_ = _int(pn[0], "PE_Num", p), _int(pn[1], "PE_Num", p)
        tile["pe_rows"], tile["pe_cols"] = (4, 4) if (r_, c_) == (0, 0) else (r_, c_)
    if (v := num("Tile level", "Pooling_unit_num")) is not None and v > 0:
        tile["pooling_units"] = _int(v, "Pooling_unit_num", p)
    if (v := num("Tile level", "Pooling_Tech")) is not None and v > 0:
        tile["pooling_tech_nm"] = _int(v, "Pooling_Tech", p)
    if (v := num("Tile level", "Inter_Tile_Bandwidth")) is not None:
        tile["inter_tile_bandwidth_Gbps"] = v
    if (v := num("Tile level", "Intra_Tile_Bandwidth")) is not None:
        tile["intra_tile_bandwidth_Gbps"] = v
    if (v := num("Architecture level", "Buffer_Choice")) is not None:
        c = _int(v, "Buffer_Choice", p)
        if c not in (1, 2, 3):
            raise CrossnasError(f"{p}: Buffer_Choice = {c}; allowed: 1 (SRAM), 2 (DRAM), 3 (RRAM)")
        chip["buffer_type"] = {1: "SRAM", 2: "DRAM", 3: "RRAM"}[c]
    if (v := num("Architecture level", "Buffer_Technology")) is not None:
        chip["buffer_tech_nm"] = _int(v, "Buffer_Technology", p) if v > 0 else 65
    if (v := num("Architecture level", "Buffer_Bitwidth")) is not None and v > 0:
        chip["buffer_bitwidth"] = _int(v, "Buffer_Bitwidth", p)
    if (v := num("Architecture level", "Tile_Connection")) is not None:
        chip["tile_connection"] = _int(v, "Tile_Connection", p)
    if (raw := get("Architecture level", "Tile_Num")) is not None:
        tn = _nums(raw, "Tile_Num", p, 2)
        r_, c_ = _int(tn[0], "Tile_Num", p), _int(tn[1], "Tile_Num", p)
        chip["tile_rows"], chip["tile_cols"] = (8, 8) if (r_, c_) == (0, 0) else (r_, c_)
    try:
        return HardwareConfig.model_validate(d)
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, str(p))) from None
