"""Joint search against the baselines, at an equal number of evaluations.

Methods (each run for every seed, with the same evaluator, cost model and budget):

- ``joint``: NSGA-II over the whole genome (network, bits, hardware), accuracy vs EDP.
- ``joint_paper``: the paper's weighted-fitness evolution over the whole genome
  (one evolution per ``w_acc``, sharing the budget).
- ``random``: uniform random samples of the whole genome.
- ``two_stage``: the paper's flow. Stage 1 (half the budget): network genes only (block,
  width), bits at their largest choice and the base hardware, evolved for accuracy; the
  most accurate network is kept. Stage 2 (the rest): bits and hardware for that network,
  NSGA-II accuracy vs EDP.
- ``hw_blind``: hardware-blind NAS. Stage 1 (half): network and bits evolved for
  accuracy on the base hardware; stage 2 (the rest): hardware genes only for the most
  accurate network, NSGA-II accuracy vs EDP (the hardware-only space may be exhausted
  before the budget is).

Score: hypervolume of every evaluated candidate in (accuracy max, EDP min) against a
fixed reference point: accuracy 0 and the reference EDP (the top of the EDP range
sampled from the full space with seed 0, the same for all methods and seeds). Primary:
EDP on a log axis (``log10(edp / edp_ref)``; EDP spans decades, a linear axis reduces
the volume to the best accuracy); the linear-axis volume (``edp / edp_ref``) is reported
too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from crossnas.search.costs import CostCache, CostFn
from crossnas.search.evaluators import Evaluator
from crossnas.search.genome import GenomeSpace
from crossnas.search.objectives import Evaluation, Ranges, log_hypervolume, normalized_hypervolume
from crossnas.search.planner import NSGA2Run, PaperRun, Planner, RandomRun, Run
from crossnas.search.runner import SearchProblem, sample_ranges

logger = logging.getLogger(__name__)

METHODS = ("joint", "joint_paper", "random", "two_stage", "hw_blind")


class _Shared:
    """Accuracy and cost caches shared by every method and seed (both are deterministic)."""

    def __init__(self, evaluator: Evaluator, cost_fn: CostFn | None) -> None:
        self.evaluator = evaluator
        self.cost_fn = cost_fn
        self.acc: dict[str, float] = {}
        self.n_scored = 0
        self.eval_s = 0.0

    def accuracies(self, cands: Sequence[Any]) -> list[float]:
        key = (lambda c: c.key) if self.evaluator.hardware_dependent else (lambda c: c.arch)
        todo = list({key(c): c for c in cands if key(c) not in self.acc}.values())
        if todo:
            t0 = time.perf_counter()
            for c, a in zip(todo, self.evaluator.evaluate(todo), strict=True):
                self.acc[key(c)] = float(a)
            self.eval_s += time.perf_counter() - t0
            self.n_scored += len(todo)
        return [self.acc[key(c)] for c in cands]


def execute(planner: Planner, genomes: GenomeSpace, shared: _Shared, budget: int,
            results: dict[str, Evaluation] | None = None) -> dict[str, Evaluation]:
    """Runs ``planner`` in memory until done or ``budget`` new evaluations; returns all results."""
    results = {} if results is None else results
    start = len(results)
    while len(results) - start < budget:
        stage = planner.current(results)
        if stage is None:
            break
        pending = [k for k in stage.keys if k not in results]
        todo = pending[: budget - (len(results) - start)]
        cands = [genomes.candidate(genomes.vec_of_key(k)) for k in todo]
        costs = planner.costs.costs(cands)
        for c, cost, acc in zip(cands, costs, shared.accuracies(cands), strict=True):
            results[c.key] = Evaluation(c.key, acc, cost, shared.evaluator.fidelity)
        if len(todo) < len(pending):
            break
    return results


def _planner(genomes: GenomeSpace, runs: Sequence[Run], problem: SearchProblem, seed: int,
             generations: int, cost_cache: CostCache) -> Planner:
    cfg = problem.config
    return Planner(genomes, cost_cache, runs, seed=seed, population=cfg.evolution.population,
                   generations=generations, limits=cfg.constraints.limits(), max_rejected=cfg.max_rejected)


def _nsga(problem: SearchProblem, genomes: GenomeSpace) -> NSGA2Run:
    evo = problem.config.evolution
    return NSGA2Run(("edp_mJms",), population=evo.population, mutation_prob=evo.mutation_prob,
                    crossover_prob=evo.crossover_prob, genomes=genomes)


def _acc_run(problem: SearchProblem, genomes: GenomeSpace, ranges: Ranges) -> PaperRun:
    evo = problem.config.evolution
    return PaperRun(1.0, ranges, top_k=evo.top_k, n_mutations=evo.n_mutations, n_crossovers=evo.n_crossovers,
                    mutation_prob=evo.mutation_prob, genomes=genomes)


def run_method(method: str, problem: SearchProblem, seed: int, budget: int, shared: _Shared,
               ranges: Ranges) -> dict[str, Evaluation]:
    """All evaluations of one method with one seed (at most ``budget``)."""
    full = problem.genomes()
    big = 10**6  # generations: the budget stops the loop
    evo = problem.config.evolution

    def cache(g: GenomeSpace) -> CostCache:
        return CostCache(g, shared.cost_fn)

    if method == "joint":
        return execute(_planner(full, [_nsga(problem, full)], problem, seed, big, cache(full)), full, shared, budget)
    if method == "joint_paper":
        runs: list[Run] = [PaperRun(w, ranges, top_k=evo.top_k, n_mutations=evo.n_mutations,
                                    n_crossovers=evo.n_crossovers, mutation_prob=evo.mutation_prob, genomes=full)
                           for w in problem.config.w_acc]
        return execute(_planner(full, runs, problem, seed, big, cache(full)), full, shared, budget)
    if method == "random":
        return execute(_planner(full, [RandomRun(evo.population)], problem, seed, big, cache(full)), full, shared, budget)
    if method not in ("two_stage", "hw_blind"):
        raise ValueError(f"unknown method {method!r}; allowed: {list(METHODS)}")
    hw_frozen = full.base_hw_frozen() or {i: 0 for i in full.hw_gene_indices()}
    frozen1 = dict(hw_frozen)
    if method == "two_stage":
        for i in full.arch_gene_indices([2, 3]):  # bits at their largest choice
            frozen1[i] = int(full.cardinalities[i]) - 1
    g1 = full.freeze(frozen1)
    half = budget // 2
    results = execute(_planner(g1, [_acc_run(problem, g1, ranges)], problem, seed, big, cache(g1)), g1, shared, half)
    if not results:
        return results
    winner = max(results.values(), key=lambda e: (e.accuracy, e.key))
    wvec = full.vec_of_key(winner.key)
    kinds = [0, 1] if method == "two_stage" else [0, 1, 2, 3]
    frozen2 = {i: int(wvec[i]) for i in full.arch_gene_indices(kinds)}
    g2 = full.freeze(frozen2)
    # stage 2 gets its own seed stream; the winner seeds nothing else
    stage2 = execute(_planner(g2, [_nsga(problem, g2)], problem, seed + 10_000, big, cache(g2)), g2, shared,
                     budget - len(results), results={})
    results.update({k: v for k, v in stage2.items() if k not in results})
    return results


def compare(problem: SearchProblem, evaluator: Evaluator, *, seeds: Sequence[int] = (0, 1, 2),
            budget: int | None = None, methods: Sequence[str] = METHODS, cost_fn: CostFn | None = None,
            progress: Callable[[str, int, float], None] | None = None) -> dict[str, Any]:
    """Runs every method with every seed; returns the JSON-able comparison.

    Args:
        problem: the search problem (its evolution settings, constraints, genes).
        evaluator: accuracy evaluator (the same supernet for every method).
        seeds: seeds per method.
        budget: evaluations per run; default ``population * generations``.
        methods: subset of :data:`METHODS`.
        cost_fn: batched cost model.
        progress: called ``(method, seed, hypervolume)`` after each run.
    """
    evo = problem.config.evolution
    budget = int(budget or evo.population * evo.generations)
    full = problem.genomes()
    ref_problem = SearchProblem(problem.config.model_copy(update={"seed": 0}), problem.space, problem.hardware,
                                problem.input_shape, problem.n_classes)
    ranges = sample_ranges(ref_problem, full, CostCache(full, cost_fn))
    shared = _Shared(evaluator, cost_fn)
    table: dict[str, Any] = {}
    for method in methods:
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            res = run_method(method, problem, int(seed), budget, shared, ranges)
            evs = list(res.values())
            hv = log_hypervolume(evs, ("edp_mJms",), ranges)
            rows.append({
                "seed": int(seed), "evaluations": len(evs), "hypervolume": hv,
                "hypervolume_linear": normalized_hypervolume(evs, ("edp_mJms",), ranges),
                "best_accuracy": max((e.accuracy for e in evs), default=None),
                "min_edp_mJms": min((e.cost.edp_mJms for e in evs), default=None),
                "wall_s": round(time.perf_counter() - t0, 3),
            })
            if progress is not None:
                progress(method, int(seed), hv)
        hvs = np.array([r["hypervolume"] for r in rows], dtype=float)
        lin = np.array([r["hypervolume_linear"] for r in rows], dtype=float)
        table[method] = {
            "hypervolume_mean": float(hvs.mean()),
            "hypervolume_std": float(hvs.std(ddof=1)) if len(hvs) > 1 else 0.0,
            "hypervolume_linear_mean": float(lin.mean()),
            "hypervolume_linear_std": float(lin.std(ddof=1)) if len(lin) > 1 else 0.0,
            "runs": rows,
        }
    verdict = _verdict(table)
    return {
        "format": "crossnas-compare/1",
        "budget": budget, "seeds": [int(s) for s in seeds],
        "fidelity": evaluator.fidelity,
        "hypervolume": "accuracy (max) vs edp_mJms (min); points (1 - accuracy, log10(edp / edp_ref)), "
                       "reference (1, 0): accuracy x decades of EDP",
        "hypervolume_linear": "points (1 - accuracy, edp / edp_ref), reference (1, 1)",
        "edp_ref_mJms": ranges.ranges["edp_mJms"][1],
        "methods": table, "verdict": verdict,
        "accuracy_evaluations": shared.n_scored, "accuracy_eval_s": round(shared.eval_s, 3),
    }


def _verdict(table: Mapping[str, Any]) -> dict[str, Any]:
    if "joint" not in table:
        return {}
    j = table["joint"]
    out: dict[str, Any] = {}
    for m, row in table.items():
        if m == "joint":
            continue
        out[f"joint_ge_{m}"] = j["hypervolume_mean"] >= row["hypervolume_mean"]
    if "two_stage" in table:
        ts = table["two_stage"]
        out["joint_beats_two_stage_by_more_than_one_std"] = (
            j["hypervolume_mean"] - ts["hypervolume_mean"] > max(j["hypervolume_std"], ts["hypervolume_std"])
        )
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`compare` result (hypervolume as mean ± std)."""
    lines = ["| method | HV acc vs log EDP | HV acc vs EDP (linear) | best accuracy | min EDP (mJ·ms) | evaluations |",
             "|---|---|---|---|---|---|"]
    for m, row in result["methods"].items():
        runs = row["runs"]
        acc = np.mean([r["best_accuracy"] for r in runs if r["best_accuracy"] is not None]) * 100
        edp = np.mean([r["min_edp_mJms"] for r in runs if r["min_edp_mJms"] is not None])
        ev = np.mean([r["evaluations"] for r in runs])
        lines.append(f"| {m} | {row['hypervolume_mean']:.4f} ± {row['hypervolume_std']:.4f} | "
                     f"{row['hypervolume_linear_mean']:.4f} ± {row['hypervolume_linear_std']:.4f} | {acc:.2f}% | "
                     f"{edp:.4g} | {ev:.0f} |")
    return "\n".join(lines)
