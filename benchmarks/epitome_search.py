"""EPIM in the search: a joint search with the epitome gene against one without, same budget.

Two variants of ``configs/digits_epim.yaml`` (PIM-aware accuracy, MNSIM cost mode, the
same hardware genes), each with its own supernet trained on its own space:

* ``epitome``: the config as it is (``space.epitome: [1, 2, 4]``);
* ``dense``: ``space.epitome: [1]`` (no epitome gene);
* ``epitome@N`` / ``dense@N``: the same with the supernet trained ``N`` epochs (the config: 120).

Both search in Pareto mode (NSGA-II) for accuracy against chip area (``area_mm2``: in the
MNSIM mode the area is the tiles the crossbars need), with the same population, generations
and seeds. Every evaluated candidate is scored as the search saw it (its PIM accuracy when
the PIM-aware search measured it, else its supernet accuracy; ``accuracy_source`` says
which), and costed again here for its crossbar count and crossbar cells (crossbars x rows x
cols). Reported per variant and seed, mean ± std over seeds:

* ``hv_area``: hypervolume of ``(1 - accuracy, log10(area / area_ref))``, reference
  ``(1 - r, 0)``: only accuracy above ``r`` (``--reference-accuracy``) counts, ``area_ref`` is
  the largest area any candidate of either variant had (one reference for all runs);
* ``hv_cells``: the same with the crossbar cells instead of the area;
* ``hv_low_area`` (with ``--low-area CAP``): the hypervolume of the candidates up to ``CAP``
  mm² only, accuracy from 0, area on a log scale up to the cap: the low-area end alone;
* ``retrained_front`` (with ``--retrain-below CAP``): every front network up to ``CAP`` mm²
  retrained from scratch (the config's ``retrain``) and scored like the pipeline's evaluate
  stage (test split, quantized and PIM accuracy on the hardware the search chose), and the
  best retrained PIM accuracy per seed under each area budget up to the cap;
* ``front_area``: the non-dominated (accuracy, area) points, and the best accuracy under a
  few area budgets (``--area-budgets``; "at low area the epitome front must dominate").

The runs live in ``--out`` (default ``runs/epitome_search``); rerunning continues (the CLI's
supernet and search stages resume). Children run with one torch thread each.

Usage::

    python benchmarks/epitome_search.py [--seeds 0,1,2] [--population 40] [--generations 15] \\
        [--reference-accuracy 0.9] [--out runs/epitome_search]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = Path(__file__).resolve().parents[1] / "src" / "crossnas" / "configs" / "digits_epim.yaml"
VARIANTS = {"epitome": [], "dense": ["space.epitome=[1]"]}


def _crossnas(args: list[str]) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "crossnas")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([exe, *args], check=True, env=env, stdout=subprocess.DEVNULL)


def _variant(name: str) -> tuple[str, list[str]]:
    """``epitome`` / ``dense``, optionally ``@EPOCHS`` (its supernet trained that long): the
    variant's base name and its config overrides."""
    base, _, epochs = name.partition("@")
    if base not in VARIANTS or (epochs and not epochs.isdigit()):
        raise SystemExit(f"--variants: {name!r}; allowed: {', '.join(VARIANTS)}, optionally @EPOCHS")
    return base, [*VARIANTS[base], *([f"train.epochs={epochs}"] if epochs else [])]


def _sets(variant: str, args: argparse.Namespace) -> list[str]:
    sets = [*_variant(variant)[1], "search.mode=pareto", "search.objectives=[area_mm2]",
            f"search.evolution.population={args.population}", f"search.evolution.generations={args.generations}",
            *args.set]
    return [x for s in sets for x in ("--set", s)]


def _costed(variant: str, cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds ``crossbars`` and ``cells`` (crossbars x rows x cols) to each candidate."""
    from crossnas.config.loading import parse_set_options
    from crossnas.config.run import load_run_config
    from crossnas.config.search import apply_hardware_genes
    from crossnas.hw import cost_networks
    from crossnas.space.arch import ArchSpec
    from crossnas.space.mnsim import arch_to_network_dict

    cfg = load_run_config(CONFIG, parse_set_options(_variant(variant)[1]))  # the variant's space and hardware
    nets, hws = [], []
    for c in cands:
        nets.append(arch_to_network_dict(ArchSpec.from_string(c["arch"]), cfg.space, (1, 8, 8), 10))
        hws.append(apply_hardware_genes(cfg.hardware, dict(c["hardware_genes"])))
    res = cost_networks(nets, hws, strict=False)
    out = []
    for i, c in enumerate(cands):
        if i in res.errors:
            continue
        xb = res.report(i)["crossbars"]
        out.append({**c, "crossbars": xb, "cells": xb * hws[i].crossbar.rows * hws[i].crossbar.cols})
    return out


def _retrained_front(variant: str, by_seed: dict[int, list[dict[str, Any]]], cap: float,
                     out: Path) -> list[dict[str, Any]]:
    """Retrains from scratch (the config's ``retrain`` settings) every network on the seeds'
    (search accuracy, area) fronts up to ``cap`` mm² and scores it as the pipeline's evaluate
    stage does (its test split, the ``evaluate`` device overrides, Monte-Carlo chips) on the
    hardware the search chose for it. One row per front point; a network is trained once."""
    from crossnas.config.loading import parse_set_options
    from crossnas.config.run import load_run_config
    from crossnas.config.search import apply_hardware_genes
    from crossnas.data import load_data
    from crossnas.pimsim import pim_accuracy
    from crossnas.pipeline.retrain import retrain_spec
    from crossnas.pipeline.stages import CALIBRATION_IMAGES, evaluation_hardware
    from crossnas.space.arch import ArchSpec
    from crossnas.utils.io import stable_hash

    cfg = load_run_config(CONFIG, parse_set_options(_variant(variant)[1]))
    data = load_data(cfg.data)
    ev = cfg.evaluate
    trained: dict[str, Any] = {}
    rows = []
    for seed, cands in by_seed.items():
        acc = np.array([c["accuracy"] for c in cands])
        area = np.array([c["area_mm2"] for c in cands])
        for a, x in _front(np.stack([1 - acc, area], axis=1)):
            if x > cap:
                continue
            c = next(c for c in cands if c["area_mm2"] == x and abs(1 - c["accuracy"] - a) < 1e-12)
            if c["arch"] not in trained:
                spec = ArchSpec.from_string(c["arch"])
                trained[c["arch"]] = retrain_spec(cfg, spec, data, out / "retrained" / stable_hash(c["arch"])[:12])
            module, metrics = trained[c["arch"]]
            hw = evaluation_hardware(ev, apply_hardware_genes(cfg.hardware, dict(c["hardware_genes"])))
            res = pim_accuracy(module, hw, data.test_x, data.test_y, mc_runs=ev.mc_runs, seed=ev.seed,
                               calibration_x=data.train_x[:CALIBRATION_IMAGES])
            rows.append({"seed": seed, "arch": c["arch"], "hardware_genes": c["hardware_genes"],
                         "area_mm2": float(x), "search_accuracy": float(1 - a),
                         "quantized_test_accuracy": float(metrics["quantized_test_accuracy"]),
                         "pim_test_accuracy": float(res.mean), "pim_test_std": float(res.std)})
            print(f"{variant} seed {seed}: {x:.2f} mm², search {1 - a:.3f}, retrained quantized "
                  f"{rows[-1]['quantized_test_accuracy']:.3f}, PIM {res.mean:.3f}  {c['arch']}", flush=True)
    return rows


def _front(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``(1 - accuracy, cost)`` (both minimised), sorted by cost."""
    order = np.lexsort((points[:, 0], points[:, 1]))
    best, keep = np.inf, []
    for i in order:
        if points[i, 0] < best:
            keep.append(i)
            best = points[i, 0]
    return points[keep]


def main() -> None:
    from crossnas.pipeline.stages import export_candidates
    from crossnas.search.objectives import hypervolume

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--population", type=int, default=40)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--reference-accuracy", type=float, default=0.9)
    ap.add_argument("--area-budgets", default="20,40,80")
    ap.add_argument("--low-area", type=float, default=None,
                    help="also the hypervolume of the low-area end: candidates up to this area (mm²), "
                         "(1 - accuracy, log10(area / cap)) against (1, 0)")
    ap.add_argument("--retrain-below", type=float, default=None,
                    help="retrain from scratch and score on the chip every front network up to this area (mm²)")
    ap.add_argument("--out", default="runs/epitome_search")
    ap.add_argument("--variants", default="epitome,dense",
                    help="comma-separated: epitome, dense, each optionally @EPOCHS of supernet training")
    ap.add_argument("--set", action="append", default=[], help="extra config override for every run (repeatable)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
    timing: dict[str, Any] = {}
    for variant in args.variants.split(","):
        vdir = out / variant.replace("@", "_e")
        t0 = time.perf_counter()
        _crossnas(["run", "-c", str(CONFIG), "-o", str(vdir), "--until", "supernet", "--no-progress",
                   *_sets(variant, args)])
        timing[f"{variant}_supernet_s"] = round(time.perf_counter() - t0, 1)
        runs[variant] = {}
        for seed in seeds:
            sdir = vdir / f"seed{seed}"
            t0 = time.perf_counter()
            _crossnas(["search", "-c", str(CONFIG), "-o", str(sdir), "--supernet", str(vdir / "supernet"), "--no-progress",
                       *_sets(variant, args), "--set", f"search.seed={seed}"])
            timing[f"{variant}_seed{seed}_search_s"] = round(time.perf_counter() - t0, 1)
            cands = export_candidates(sdir, "crossnas")["candidates"]
            runs[variant][seed] = _costed(variant, cands)
            print(f"{variant} seed {seed}: {len(runs[variant][seed])} candidates "
                  f"({timing[f'{variant}_seed{seed}_search_s']:.0f} s)", flush=True)

    r = args.reference_accuracy
    refs = {m: max(c[m] for v in runs.values() for cs in v.values() for c in cs) for m in ("area_mm2", "cells")}
    budgets = [float(b) for b in args.area_budgets.split(",")]
    table: dict[str, Any] = {}
    for variant, by_seed in runs.items():
        rows = []
        for seed, cands in by_seed.items():
            acc = np.array([c["accuracy"] for c in cands])
            row: dict[str, Any] = {"seed": seed, "evaluations": len(cands),
                                   "pim_scored": sum(c.get("accuracy_source") == "pim" for c in cands)}
            for metric, key in (("area_mm2", "hv_area"), ("cells", "hv_cells")):
                cost = np.log10(np.array([c[metric] for c in cands], dtype=float) / refs[metric])
                row[key] = float(hypervolume(np.stack([1 - acc, cost], axis=1), np.array([1 - r, 0.0])))
            area = np.array([c["area_mm2"] for c in cands])
            if args.low_area is not None:  # the low-area end alone: accuracy above 0, area up to the cap
                low = area <= args.low_area
                row["hv_low_area"] = float(hypervolume(
                    np.stack([1 - acc[low], np.log10(area[low] / args.low_area)], axis=1), np.array([1.0, 0.0])))
            row["front_area"] = [[round(1 - a, 4), round(float(x), 2)]
                                 for a, x in _front(np.stack([1 - acc, area], axis=1))]
            row["best_accuracy_at_area"] = {f"{b:g}": float(acc[area <= b].max()) if (area <= b).any() else None
                                            for b in budgets}
            row["min_area_at_reference"] = float(area[acc > r].min()) if (acc > r).any() else None
            row["min_crossbars_at_reference"] = (min(c["crossbars"] for c in cands if c["accuracy"] > r)
                                                 if (acc > r).any() else None)
            rows.append(row)
        summary: dict[str, Any] = {"runs": rows}
        keys = ("hv_area", "hv_cells", *(("hv_low_area",) if args.low_area is not None else ()),
                "min_area_at_reference", "min_crossbars_at_reference")
        for key in keys:
            vals = [x[key] for x in rows if x[key] is not None]
            summary[f"{key}_mean"] = statistics.mean(vals) if vals else None
            summary[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        if args.retrain_below is not None:
            vdir = out / variant.replace("@", "_e")
            summary["retrained_front"] = fr = _retrained_front(variant, by_seed, args.retrain_below, vdir)
            summary["retrained_best_pim_at_area"] = {
                f"{b:g}": [max((r["pim_test_accuracy"] for r in fr if r["seed"] == s and r["area_mm2"] <= b),
                               default=None) for s in by_seed]
                for b in budgets if b <= args.retrain_below}
        table[variant] = summary
        print(f"{variant}: hv(acc, log area) {summary['hv_area_mean']:.4f} ± {summary['hv_area_std']:.4f}, "
              f"hv(acc, log cells) {summary['hv_cells_mean']:.4f} ± {summary['hv_cells_std']:.4f}, "
              f"min area above {r:g}: {summary['min_area_at_reference_mean']}", flush=True)
    print(json.dumps({"reference_accuracy": r, "area_ref_mm2": refs["area_mm2"], "cells_ref": refs["cells"],
                      "seeds": seeds, "population": args.population, "generations": args.generations,
                      "timing_s": timing, "variants": table}))


if __name__ == "__main__":
    main()
