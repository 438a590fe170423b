"""PIM-aware vs hardware-blind (supernet-only) search at the same budget, on digits.

The issue-10 experiment: the shipped ``configs/digits.yaml`` with every MNSIM ADC
(``adc.choice`` 1..8) and a harsher chip (``--variation`` % conductance variation in
both the search's PIM scores and the final evaluation), one trained supernet shared by
all searches. For each seed, two searches with the same evolution budget:

- ``pim_aware``: the default multi-fidelity scoring;
- ``blind``: ``fidelity: supernet`` with ``allow_blind_hardware: true`` (the old default).

Every winner (one per ``w_acc``) is retrained from scratch (``retrain`` section) and
evaluated on the test split on ``--mc`` simulated chips: its PIM accuracy, its drop
(quantized − PIM) and its EDP. Then Kendall τ between the search-time PIM score and the
retrained PIM accuracy over ``--tau-candidates`` PIM-scored candidates of the first
seed's PIM-aware search (spread over the range of scores).

Usage::

    python benchmarks/pim_aware.py --supernet RUN/supernet --out /tmp/pa [--seeds 0 1 2]

Resumable: searches and retrainings continue from ``--out``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import yaml


def _config(base: Path, out: Path, *, seed: int, fidelity: str, variation: float, mc: int,
            generations: int | None) -> Path:
    data = yaml.safe_load(base.read_text())
    data["seed"] = 0
    s = data["search"]
    s["seed"] = seed
    s["hardware_genes"]["adc.choice"] = [1, 2, 3, 4, 5, 6, 7, 8]
    if generations is not None:
        s.setdefault("evolution", {})["generations"] = generations
    if fidelity == "blind":
        s["accuracy"] = {"fidelity": "supernet", "allow_blind_hardware": True,
                         "bn_batches": s.get("accuracy", {}).get("bn_batches", 4)}
    data["evaluate"] = {**data.get("evaluate", {}), "mc_runs": mc, "device": {"variation_pct": variation}}
    path = out / f"config-{fidelity}-s{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _evaluate(cfg_path: Path, arch: str, hardware: Any, ckpt: Path, data: Any, variation: float,
              mc: int) -> dict[str, Any]:
    from crossnas.config.run import load_run_config
    from crossnas.pimsim import pim_accuracy
    from crossnas.pipeline.retrain import retrain_spec
    from crossnas.pipeline.stages import CALIBRATION_IMAGES
    from crossnas.space import ArchSpec

    cfg = load_run_config(cfg_path)
    spec = ArchSpec.from_string(arch)
    t0 = time.perf_counter()
    module, _ = retrain_spec(cfg, spec, data, ckpt)
    t1 = time.perf_counter()
    hw = hardware.with_updates(device={"variation_pct": variation})
    res = pim_accuracy(module, hw, data.test_x, data.test_y, mc_runs=mc, seed=0,
                       calibration_x=data.train_x[:CALIBRATION_IMAGES])
    return {"quantized_accuracy": res.quantized_accuracy, "pim_accuracy_mean": res.mean, "pim_accuracy_std": res.std,
            "drop": res.quantized_accuracy - res.mean, "retrain_s": t1 - t0, "eval_s": time.perf_counter() - t1}


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b."""
    n, conc, disc, ta, tb = len(a), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ta) * (conc + disc + tb)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "digits.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variation", type=float, default=5.0)
    ap.add_argument("--mc", type=int, default=3)
    ap.add_argument("--generations", type=int, default=None, help="override the config's generations")
    ap.add_argument("--tau-candidates", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    from crossnas.config.run import load_run_config
    from crossnas.data import load_data
    from crossnas.pipeline.run import winner_hardware
    from crossnas.search.loading import load_search
    from crossnas.search.runner import run_search

    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    searches: dict[tuple[str, int], Any] = {}
    data = None
    for seed in args.seeds:
        for fid in ("pim_aware", "blind"):
            cfg_path = _config(args.config, args.out, seed=seed, fidelity=fid, variation=args.variation,
                               mc=args.mc, generations=args.generations)
            if data is None:
                data = load_data(load_run_config(cfg_path).data)
            sdir = args.out / f"search-{fid}-s{seed}"
            loaded = load_search(cfg_path, sdir, supernet_dir=args.supernet)
            t0 = time.perf_counter()
            res = run_search(loaded.problem, loaded.evaluator, sdir, extra_info=loaded.info)
            search_s = time.perf_counter() - t0
            timings = json.loads((sdir / "search.json").read_text())["timings"]
            searches[(fid, seed)] = res
            for w in res.best["winners"]:
                ev = _evaluate(cfg_path, w["arch"], winner_hardware(w), args.out / "retrain" / w["arch"], data,
                               args.variation, args.mc)
                rows.append({"seed": seed, "fidelity": fid, "w_acc": w["w_acc"], "arch": w["arch"],
                             "hardware_genes": w["hardware_genes"], "search_accuracy": w["metrics"]["accuracy"],
                             "accuracy_source": w["accuracy_source"], "edp_mJms": w["metrics"]["edp_mJms"],
                             "search_wall_s": search_s, "pim_scores": res.summary.get("pim_scores", 0),
                             "pim_s_per_candidate": timings.get("pim_s_per_candidate"), **ev})
                print(json.dumps(rows[-1]), flush=True)
    # Kendall tau: search-time PIM score vs retrained PIM accuracy
    res0 = searches[("pim_aware", args.seeds[0])]
    scored = sorted((e for e in res0.results.values() if e.fidelity == "pim"), key=lambda e: e.accuracy)
    n = min(args.tau_candidates, len(scored))
    pick = [scored[round(i * (len(scored) - 1) / max(n - 1, 1))] for i in range(n)] if n else []
    pick = list({e.key: e for e in pick}.values())
    cfg0 = _config(args.config, args.out, seed=args.seeds[0], fidelity="pim_aware", variation=args.variation,
                   mc=args.mc, generations=args.generations)
    loaded0 = load_search(cfg0, args.out / f"search-pim_aware-s{args.seeds[0]}", supernet_dir=args.supernet)
    genomes = loaded0.problem.genomes()
    tau_rows = []
    for e in pick:
        cand = genomes.candidate(genomes.vec_of_key(e.key))
        ev = _evaluate(cfg0, cand.arch, cand.hardware, args.out / "retrain" / cand.arch, data, args.variation, args.mc)
        tau_rows.append({"key": e.key, "search_pim_score": e.accuracy, **ev})
        print(json.dumps(tau_rows[-1]), flush=True)
    tau = kendall_tau([r["search_pim_score"] for r in tau_rows], [r["pim_accuracy_mean"] for r in tau_rows])

    def agg(fid: str) -> dict[str, Any]:
        rs = [r for r in rows if r["fidelity"] == fid]
        acc = [r["pim_accuracy_mean"] for r in rs]
        drop = [r["drop"] for r in rs]
        return {"n_winners": len(rs), "pim_accuracy_mean": statistics.fmean(acc),
                "pim_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "pim_accuracy_min": min(acc),
                "drop_mean": statistics.fmean(drop), "edp_mJms_median": statistics.median(r["edp_mJms"] for r in rs),
                "search_wall_s_median": statistics.median(r["search_wall_s"] for r in rs)}

    summary = {"benchmark": "pim_aware", "dataset": "digits", "variation_pct": args.variation, "mc": args.mc,
               "seeds": args.seeds, "pim_aware": agg("pim_aware"), "blind": agg("blind"),
               "edp_ratio_aware_to_blind": agg("pim_aware")["edp_mJms_median"] / agg("blind")["edp_mJms_median"],
               "kendall_tau_search_pim_vs_retrained_pim": tau, "tau_candidates": len(tau_rows)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
