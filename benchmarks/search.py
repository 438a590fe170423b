"""Search overhead per candidate: planning, hardware cost model, persistence (accuracy stubbed).

Runs the default paper-mode search (population 50, 20 generations, 2 w_acc values) with
a synthetic accuracy (microseconds) so the time measured is the search's own: the
evolution plan, the batched cost-model calls, the Optuna journal storage (claims,
results, reads) and the outputs. Repeats alternate the journal-file storage and the
in-memory-equivalent baseline (no persistence: the same planner driven in memory) and
report medians. The last line is one JSON object.

Usage: python benchmarks/search.py [--repeats 3] [--generations 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.search import SearchProblem, SyntheticAccuracy, run_search
from crossnas.search.compare import _Shared, execute
from crossnas.search.costs import CostCache
from crossnas.search.planner import Planner
from crossnas.search.runner import build_runs, sample_ranges


def persistent(problem: SearchProblem) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_search(problem, SyntheticAccuracy, d)
        wall = time.perf_counter() - t0
        timings = json.load(open(f"{d}/search.json"))["timings"]
    n = res.summary["evaluations"]
    return {"n": n, "wall_s": wall, "ms_per_candidate": wall / n * 1e3,
            "cost_model_ms_per_candidate": timings["cost_model_s"] / n * 1e3,
            "storage_ms_per_candidate": timings["storage_s"] / n * 1e3}


def in_memory(problem: SearchProblem) -> dict:
    t0 = time.perf_counter()
    g = problem.genomes()
    costs = CostCache(g)
    ranges = sample_ranges(problem, g, costs)
    cfg = problem.config
    planner = Planner(g, costs, build_runs(problem, g, ranges), seed=cfg.seed, population=cfg.evolution.population,
                      generations=cfg.evolution.generations, limits=cfg.constraints.limits())
    res = execute(planner, g, _Shared(SyntheticAccuracy(), None), 10**9)
    wall = time.perf_counter() - t0
    return {"n": len(res), "wall_s": wall, "ms_per_candidate": wall / len(res) * 1e3,
            "cost_model_ms_per_candidate": costs.seconds / len(res) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generations", type=int, default=20)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    cfg = SearchConfig.model_validate({"evolution": {"generations": args.generations}})
    problem = SearchProblem(cfg, SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)
    pers, mem = [], []
    for i in range(args.repeats):
        pers.append(persistent(problem))
        mem.append(in_memory(problem))
        print(f"repeat {i}: journal {pers[-1]['ms_per_candidate']:.2f} ms/candidate "
              f"(cost model {pers[-1]['cost_model_ms_per_candidate']:.2f}, storage {pers[-1]['storage_ms_per_candidate']:.2f}), "
              f"in memory {mem[-1]['ms_per_candidate']:.2f} ms/candidate, {pers[-1]['n']} candidates", flush=True)

    def med(rows: list[dict], k: str) -> float:
        return round(statistics.median(r[k] for r in rows), 3)

    out = {
        "candidates": pers[0]["n"],
        "overhead_ms_per_candidate": med(pers, "ms_per_candidate"),
        "cost_model_ms_per_candidate": med(pers, "cost_model_ms_per_candidate"),
        "storage_ms_per_candidate": med(pers, "storage_ms_per_candidate"),
        "overhead_without_cost_model_ms_per_candidate": round(
            statistics.median(p["ms_per_candidate"] - p["cost_model_ms_per_candidate"] for p in pers), 3),
        "in_memory_ms_per_candidate": med(mem, "ms_per_candidate"),
        "search_wall_s": med(pers, "wall_s"),
        "repeats": args.repeats,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
