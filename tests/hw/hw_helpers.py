"""Shared helpers for the hw tests: rebuilding reference points from the extract."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.hw.examples import EXAMPLES
from crossnas.space.arch import ArchSpec
from crossnas.space.mnsim import arch_to_network_dict

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "mnsim"


def hw_from_settings(h: dict[str, Any]) -> HardwareConfig:
    """A HardwareConfig from a reference record's ``hw`` settings."""
    d: dict[str, Any] = {
        "crossbar": {"rows": h["xbar"], "cols": h["xbar"]},
        "adc": {"choice": h["adc_choice"]},
        "dac": {"choice": h["dac_choice"]},
        "pe": {"adcs_per_subarray": h["adc_num"], "dacs_per_subarray": h["dac_num"]},
    }
    if "pe_num" in h:
        pn = h["pe_num"]
        if isinstance(pn, str):
            pn = [int(x) for x in pn.split(",")]
        d["pe"]["polarity"] = h["xbar_polarity"]
        d["tile"] = {"pe_rows": pn[0], "pe_cols": pn[1], "inter_tile_bandwidth_Gbps": h["inter_tile_bandwidth"],
                     "intra_tile_bandwidth_Gbps": h["intra_tile_bandwidth"]}
        d["chip"] = {"digital_frequency_MHz": h["digital_frequency"], "buffer_tech_nm": h["buffer_technology"]}
        d["device"] = {"levels": h["device_level"]}
    return HardwareConfig.model_validate(d)


def network_of(row: dict[str, Any]) -> dict[str, Any]:
    if "builtin" in row:
        return EXAMPLES[row["builtin"]]()
    spec = ArchSpec.from_string(row["arch"])
    return arch_to_network_dict(spec, SpaceConfig(n_layers=len(spec.layers)), (3, 32, 32), 10)


@lru_cache(maxsize=1)
def extract_rows() -> tuple[dict[str, Any], ...]:
    with gzip.open(DATA / "mnsim_extract.jsonl.gz", "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)
