"""Builds ``tests/data/mnsim_extract.jsonl.gz`` from the MNSIM reference files.

Run from the repository root: ``python tests/data/mnsim_make_extract.py``. Each output
line holds what a test needs to rebuild one reference point without the reference
folder: the architecture string (CrossNAS networks, rebuilt with
``crossnas.space.arch_to_network_dict``) or the built-in name, the hardware settings,
MNSIM's four totals (latency ns, energy nJ, area um^2, power W) and each compute layer's
finish time (ns, 7 significant digits: the per-layer latency check).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "mnsim"
OUT = Path(__file__).resolve().parent / "mnsim_extract.jsonl.gz"
_CODE = {0: "V", 1: "v", 2: "R"}
HW_KEYS = ("xbar", "adc_choice", "dac_choice", "adc_num", "dac_num", "device_level", "xbar_polarity", "pe_num",
           "inter_tile_bandwidth", "intra_tile_bandwidth", "digital_frequency", "buffer_technology")


def arch_string(arch: dict) -> str:
    toks = []
    for b, c, w, a in zip(arch["blocks"], arch["channels"], arch["wbits"], arch["abits"], strict=True):
        toks.append("S" if b == 3 else f"{_CODE[b]}{c}w{w}a{a}")
    return "-".join(toks)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from crossnas.config.space import SpaceConfig
    from crossnas.hw.examples import EXAMPLES
    from crossnas.space.arch import ArchSpec
    from crossnas.space.mnsim import arch_to_network_dict

    rows = []
    for fname in ("calibration.jsonl", "calibration_hwparams.jsonl"):
        for line in (REF / fname).open():
            r = json.loads(line)
            row = {"id": r["id"], "subset": r["subset"], "file": fname,
                   "hw": {k: r["hw"][k] for k in HW_KEYS if k in r["hw"]},
                   "latency": r["latency"], "energy": r["energy"], "area": r["area"], "power": r["power"]}
            ref_layers = [{**{k: v for k, v in lay.items() if k != "depthwise"}, "weight_bit": q["weight_bit"],
                           "activation_bit": q["activation_bit"]} for lay, q in zip(r["layers"], r["quantize_config"], strict=True)]
            if "mnsim_builtin" in r["arch"]:
                row["builtin"] = r["arch"]["mnsim_builtin"]
                ours = EXAMPLES[row["builtin"]]()["layers"]
            else:
                row["arch"] = arch_string(r["arch"])
                spec = ArchSpec.from_string(row["arch"])
                ours = arch_to_network_dict(spec, SpaceConfig(n_layers=len(spec.layers)), (3, 32, 32), 10)["layers"]
            if ours != ref_layers:
                raise SystemExit(f"{r['id']}: rebuilt layer list differs from the reference")
            row["finish"] = [float(f"{lay['finish_time_ns']:.7g}") for lay in r["per_layer"]]
            rows.append(row)
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    print(f"wrote {len(rows)} records to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
