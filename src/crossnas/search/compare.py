"""Joint search against the baselines, at an equal number of evaluations.

Methods (each run for every seed, with the same evaluator, cost model and budget):

- ``joint``: NSGA-II over the whole genome (network, bits, hardware), accuracy vs EDP.
- ``joint_paper``: the paper's weighted-fitness evolution over the whole genome
  (one evolution per ``w_acc``, sharing the budget).
- ``random``: uniform random samples of the whole genome.
- ``two_stage``: the paper's flow. Stage 1 (half the budget): network genes only (block,
  width), bits at their largest choice and the base hardware, evolved for accuracy; the
  most accurate network is kept. Stage 2 (the rest): bits and hardware for that network,
  NSGA-II accuracy vs EDP. Epitome genes (a space with ``epitome`` choices) count as
  compression, like bits: dense (the smallest wrap) in stage 1, searched in stage 2.
- ``hw_blind``: hardware-blind NAS. Stage 1 (half): network and bits (and epitome genes)
  evolved for accuracy on the base hardware; stage 2 (the rest): hardware genes only for
  the most accurate network, NSGA-II accuracy vs EDP (the hardware-only space may be
  exhausted before the budget is).

Score: hypervolume of every evaluated candidate in (accuracy max, EDP min) against a
fixed reference point: accuracy 0 and the reference EDP (the top of the EDP range
sampled from the full space with seed 0, the same for all methods and seeds). Primary:
EDP on a log axis (``log10(edp / edp_ref)``; EDP spans decades, a linear axis reduces
the volume to the best accuracy); the linear-axis volume (``edp / edp_ref``) is reported
too.

Reference accuracy: the accuracy-0 reference credits designs no one would deploy (a
10 %-accurate network at a tiny EDP spans many decades), so every figure is also given
against a reference accuracy ``r`` (:data:`DEFAULT_REFERENCE_ACCURACY`, 0.8, or the
caller's): only accuracy above ``r`` counts (``*_at_reference`` keys, and
``verdict_at_reference``). The accuracy-0 figures keep their old keys.

Resume: with ``runs_dir`` every method x seed run is saved there (one JSON file each,
rewritten atomically after every batch of evaluations). A rerun with the same config
reuses finished runs as they are and continues an interrupted one by replaying its
planner (a pure function of the results) from the saved evaluations; the accuracy cache
is refilled from every saved run and the ranges (reference EDP) are read back, not
sampled again. A ``runs_dir`` made with another config (search, space, hardware,
supernet/data or budget) is refused. The reference accuracy is not part of the config:
changing it only rescores the saved runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossnas.errors import CrossnasError
from crossnas.search.costs import CostCache, CostFn
from crossnas.search.evaluators import Evaluator
from crossnas.search.genome import GenomeSpace
from crossnas.search.objectives import (
    Evaluation,
    HardwareCost,
    Ranges,
    log_hypervolume,
    normalized_hypervolume,
)
from crossnas.search.planner import NSGA2Run, PaperRun, Planner, RandomRun, Run
from crossnas.search.runner import SearchProblem, sample_ranges
from crossnas.utils.io import stable_hash, write_json

logger = logging.getLogger(__name__)

METHODS = ("joint", "joint_paper", "random", "two_stage", "hw_blind")

DEFAULT_REFERENCE_ACCURACY = 0.8
"""Reference accuracy of the ``*_at_reference`` hypervolumes: a design that gets more than
one input in five wrong is no deployment candidate for the tasks crossnas ships configs
for (digits, CIFAR-10: best accuracies 93-98 %), yet at accuracy 0 such designs at a low
EDP dominate the log-EDP volume. Lower it for harder tasks (CIFAR-100)."""

RUNS_FORMAT = "crossnas-compare-runs/1"
IDENTITY_FILE = "identity.json"
RANGES_FILE = "ranges.json"


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

    def remember(self, evals: Mapping[str, Evaluation]) -> None:
        """Fills the cache from saved evaluations (the arch is the key's part before ``|``)."""
        for k, ev in evals.items():
            self.acc.setdefault(k if self.evaluator.hardware_dependent else k.partition("|")[0], ev.accuracy)


def execute(planner: Planner, genomes: GenomeSpace, shared: _Shared, budget: int,
            results: dict[str, Evaluation] | None = None,
            on_batch: Callable[[], None] | None = None) -> dict[str, Evaluation]:
    """Runs ``planner`` in memory until done or ``budget`` new evaluations; returns all results.

    ``results`` may hold earlier evaluations of the same planner (a resumed run: the
    planner replays them); ``on_batch`` is called after every batch added to it.
    """
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
        if on_batch is not None and todo:
            on_batch()
        if len(todo) < len(pending):
            break
    return results


@dataclass
class RunLog:
    """The evaluations of one method x seed by part (``search``; ``stage1``, ``stage2``), in order.

    What a resumed run replays; ``on_batch`` (if set) is called after every new batch.
    """

    parts: dict[str, dict[str, Evaluation]] = field(default_factory=dict)
    on_batch: Callable[[RunLog], None] | None = None

    def results(self) -> dict[str, Evaluation]:
        """Every evaluation once, parts in order (a key of a later part that an earlier part has is skipped)."""
        out: dict[str, Evaluation] = {}
        for evs in self.parts.values():
            for k, ev in evs.items():
                out.setdefault(k, ev)
        return out

    def run_part(self, name: str, planner: Planner, genomes: GenomeSpace, shared: _Shared,
                 budget: int) -> dict[str, Evaluation]:
        """Runs (or continues) part ``name`` up to ``budget`` evaluations in all."""
        res = self.parts.setdefault(name, {})
        hook = None if self.on_batch is None else (lambda: self.on_batch(self))  # type: ignore[misc]
        return execute(planner, genomes, shared, budget - len(res), results=res, on_batch=hook)


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
               ranges: Ranges, log: RunLog | None = None) -> dict[str, Evaluation]:
    """All evaluations of one method with one seed (at most ``budget``).

    ``log`` holds the run's evaluations by part; given with earlier evaluations (an
    interrupted run), the run continues from them and ends as if never interrupted.
    """
    log = RunLog() if log is None else log
    full = problem.genomes()
    big = 10**6  # generations: the budget stops the loop
    evo = problem.config.evolution

    def cache(g: GenomeSpace) -> CostCache:
        return CostCache(g, shared.cost_fn)

    if method in ("joint", "joint_paper", "random"):
        if method == "joint":
            runs: list[Run] = [_nsga(problem, full)]
        elif method == "joint_paper":
            runs = [PaperRun(w, ranges, top_k=evo.top_k, n_mutations=evo.n_mutations,
                             n_crossovers=evo.n_crossovers, mutation_prob=evo.mutation_prob, genomes=full)
                    for w in problem.config.w_acc]
        else:
            runs = [RandomRun(evo.population)]
        log.run_part("search", _planner(full, runs, problem, seed, big, cache(full)), full, shared, budget)
        return log.results()
    if method not in ("two_stage", "hw_blind"):
        raise ValueError(f"unknown method {method!r}; allowed: {list(METHODS)}")
    hw_frozen = full.base_hw_frozen() or {i: 0 for i in full.hw_gene_indices()}
    frozen1 = dict(hw_frozen)
    if method == "two_stage":
        for i in full.arch_gene_indices([2, 3]):  # bits at their largest choice
            frozen1[i] = int(full.cardinalities[i]) - 1
        for i in full.arch_gene_indices([4]):  # epitome genes at the smallest wrap (dense when 1 is a choice)
            frozen1[i] = 0
    g1 = full.freeze(frozen1)
    half = budget // 2
    results = log.run_part("stage1", _planner(g1, [_acc_run(problem, g1, ranges)], problem, seed, big, cache(g1)),
                           g1, shared, half)
    if not results:
        return {}
    winner = max(results.values(), key=lambda e: (e.accuracy, e.key))
    wvec = full.vec_of_key(winner.key)
    kinds = [0, 1] if method == "two_stage" else [0, 1, 2, 3, 4]
    frozen2 = {i: int(wvec[i]) for i in full.arch_gene_indices(kinds)}
    g2 = full.freeze(frozen2)
    # stage 2 gets its own seed stream and its own results; the winner seeds nothing else
    log.run_part("stage2", _planner(g2, [_nsga(problem, g2)], problem, seed + 10_000, big, cache(g2)), g2, shared,
                 budget - len(results))
    return log.results()


def runs_identity(problem: SearchProblem, budget: int) -> dict[str, Any]:
    """What makes compare runs reusable: a hash per config part and one over all.

    The search seed and mode are left out (compare sets the seeds and runs every method),
    as are the settings that only steer distributed search workers.
    """
    cfg = problem.config.model_copy(update={"seed": 0, "mode": "paper"})
    search = cfg.model_dump(mode="json", exclude={"poll_s", "worker_lease_s", "study_name", "claim_batch"})
    search.get("accuracy", {}).pop("synthetic_delay_s", None)
    parts = {
        "search": stable_hash(search),
        "space": stable_hash(problem.space.model_dump(mode="json")),
        "hardware": stable_hash(problem.hardware.model_dump(mode="json")),
        "supernet/data": stable_hash({"input_shape": list(problem.input_shape), "n_classes": problem.n_classes,
                                      "identity": dict(problem.identity)}),
        "budget": int(budget),
    }
    return {"format": RUNS_FORMAT, "fingerprint": stable_hash(parts), "parts": parts}


class RunsDir:
    """The saved runs of a comparison: ``identity.json``, ``ranges.json`` (the reference EDP
    and the paper fitness's ranges, sampled once) and ``METHOD-seedSEED.json`` per run.

    Raises:
        CrossnasError: the folder was made with another config, or a file is unreadable.
    """

    def __init__(self, path: str | Path, identity: Mapping[str, Any], fidelity: str) -> None:
        self.path = Path(path)
        self.identity = dict(identity)
        self.fidelity = fidelity
        ident = self.path / IDENTITY_FILE
        if ident.exists():
            old = self._read(ident)
            if old.get("fingerprint") != self.identity["fingerprint"]:
                old_parts = old.get("parts")
                olds = old_parts if isinstance(old_parts, dict) else {}
                diff = [k for k, v in self.identity["parts"].items() if olds.get(k) != v] or ["format"]
                raise CrossnasError(
                    f"{self.path} holds compare runs of another config (differs in: {', '.join(diff)}); "
                    f"rerun with the config it was made with, pass another --out, or delete {self.path} to start over"
                )
        else:
            write_json(ident, self.identity)

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CrossnasError(f"cannot read {path}: {exc}; delete it to redo that part of the comparison") from exc
        if not isinstance(data, dict):
            raise CrossnasError(f"cannot read {path}: not a JSON object; delete it to redo that part of the comparison")
        return data

    def ranges(self) -> Ranges | None:
        """The normalisation ranges the saved runs were scored with (``None``: not saved yet)."""
        path = self.path / RANGES_FILE
        if not path.exists():
            return None
        data = self._read(path)
        try:
            return Ranges({k: (float(a), float(b)) for k, (a, b) in data["ranges"].items()},
                          str(data.get("source", "sampled")), int(data.get("samples", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CrossnasError(f"cannot read {path}: bad entry ({exc}); delete it to sample the ranges again") from exc

    def save_ranges(self, ranges: Ranges) -> None:
        write_json(self.path / RANGES_FILE, ranges.to_json())

    def file(self, method: str, seed: int) -> Path:
        return self.path / f"{method}-seed{int(seed)}.json"

    def load(self, method: str, seed: int) -> tuple[RunLog, bool, float] | None:
        """``(log, finished, wall_s)`` of a saved run, or ``None``."""
        path = self.file(method, seed)
        if not path.exists():
            return None
        data = self._read(path)
        if data.get("fingerprint") != self.identity["fingerprint"]:
            raise CrossnasError(f"{path} was made with another config; delete it to redo that run")
        try:
            parts = {name: {e["key"]: Evaluation(e["key"], float(e["accuracy"]), HardwareCost(**e["cost"]),
                                                 self.fidelity) for e in evs}
                     for name, evs in data["parts"].items()}
            return RunLog(parts), bool(data["finished"]), float(data.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CrossnasError(f"cannot read {path}: bad entry ({exc}); delete it to redo that run") from exc

    def saved(self) -> list[RunLog]:
        """Every saved run of this config (for the accuracy cache)."""
        out = []
        for path in sorted(self.path.glob("*-seed*.json")):
            method, _, seed = path.stem.rpartition("-seed")
            try:
                loaded = self.load(method, int(seed))
            except (ValueError, CrossnasError):
                continue
            if loaded is not None:
                out.append(loaded[0])
        return out

    def save(self, method: str, seed: int, log: RunLog, finished: bool, wall_s: float) -> None:
        parts = {name: [{"key": k, "accuracy": ev.accuracy, "cost": ev.cost.as_dict()} for k, ev in evs.items()]
                 for name, evs in log.parts.items()}
        write_json(self.file(method, seed), {
            "format": RUNS_FORMAT, "fingerprint": self.identity["fingerprint"], "method": method, "seed": int(seed),
            "finished": finished, "wall_s": round(wall_s, 3), "evaluations": len(log.results()), "parts": parts,
        }, indent=None)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.array(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def compare(problem: SearchProblem, evaluator: Evaluator, *, seeds: Sequence[int] = (0, 1, 2),
            budget: int | None = None, methods: Sequence[str] = METHODS, cost_fn: CostFn | None = None,
            progress: Callable[[str, int, Mapping[str, Any]], None] | None = None,
            runs_dir: str | Path | None = None,
            reference_accuracy: float = DEFAULT_REFERENCE_ACCURACY) -> dict[str, Any]:
    """Runs every method with every seed; returns the JSON-able comparison.

    Args:
        problem: the search problem (its evolution settings, constraints, genes).
        evaluator: accuracy evaluator (the same supernet for every method).
        seeds: seeds per method.
        budget: evaluations per run; default ``population * generations``.
        methods: subset of :data:`METHODS`.
        cost_fn: batched cost model.
        progress: called ``(method, seed, row)`` after each run (``row``: its entry of ``runs``).
        runs_dir: folder the runs are saved in and resumed from (``None``: in memory only).
        reference_accuracy: accuracy of the reference point of the ``*_at_reference``
            hypervolumes, in [0, 1).

    Raises:
        CrossnasError: bad reference accuracy; ``runs_dir`` made with another config.
    """
    r = float(reference_accuracy)
    if not 0.0 <= r < 1.0:
        raise CrossnasError(f"reference accuracy {reference_accuracy}: must be in [0, 1), e.g. 0.8")
    evo = problem.config.evolution
    budget = int(budget or evo.population * evo.generations)
    store = RunsDir(runs_dir, runs_identity(problem, budget), evaluator.fidelity) if runs_dir is not None else None
    full = problem.genomes()
    ref_problem = SearchProblem(problem.config.model_copy(update={"seed": 0}), problem.space, problem.hardware,
                                problem.input_shape, problem.n_classes)
    ranges = store.ranges() if store is not None else None
    if ranges is None:
        ranges = sample_ranges(ref_problem, full, CostCache(full, cost_fn))
        if store is not None:
            store.save_ranges(ranges)
    shared = _Shared(evaluator, cost_fn)
    if store is not None:
        for saved in store.saved():
            shared.remember(saved.results())
    objs = ("edp_mJms",)
    table: dict[str, Any] = {}
    n_reused = n_resumed = 0
    for method in methods:
        rows: list[dict[str, Any]] = []
        for seed in seeds:
            seed = int(seed)
            t0 = time.perf_counter()
            loaded = store.load(method, seed) if store is not None else None
            log, finished, wall0 = loaded if loaded is not None else (RunLog(), False, 0.0)
            resumed_from = len(log.results())
            if finished:
                res, wall = log.results(), wall0
                n_reused += 1
            else:
                n_resumed += int(resumed_from > 0)
                if store is not None:
                    def save(lg: RunLog, st: RunsDir = store, method: str = method, seed: int = seed,
                             t0: float = t0, wall0: float = wall0) -> None:
                        st.save(method, seed, lg, False, wall0 + time.perf_counter() - t0)

                    log.on_batch = save
                res = run_method(method, problem, seed, budget, shared, ranges, log=log)
                wall = wall0 + time.perf_counter() - t0
                if store is not None:
                    store.save(method, seed, log, True, wall)
            evs = list(res.values())
            row = {
                "seed": seed, "evaluations": len(evs), "hypervolume": log_hypervolume(evs, objs, ranges),
                "hypervolume_linear": normalized_hypervolume(evs, objs, ranges),
                "hypervolume_at_reference": log_hypervolume(evs, objs, ranges, r),
                "hypervolume_linear_at_reference": normalized_hypervolume(evs, objs, ranges, r),
                "best_accuracy": max((e.accuracy for e in evs), default=None),
                "min_edp_mJms": min((e.cost.edp_mJms for e in evs), default=None),
                "wall_s": round(wall, 3), "reused": finished, "resumed_from": 0 if finished else resumed_from,
            }
            rows.append(row)
            if progress is not None:
                progress(method, seed, row)
        entry: dict[str, Any] = {}
        for key in ("hypervolume", "hypervolume_linear", "hypervolume_at_reference", "hypervolume_linear_at_reference"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = _mean_std([row[key] for row in rows])
        entry["runs"] = rows
        table[method] = entry
    return {
        "format": "crossnas-compare/1",
        "budget": budget, "seeds": [int(s) for s in seeds],
        "fidelity": evaluator.fidelity,
        "hypervolume": "accuracy (max) vs edp_mJms (min); points (1 - accuracy, log10(edp / edp_ref)), "
                       "reference (1, 0): accuracy x decades of EDP",
        "hypervolume_linear": "points (1 - accuracy, edp / edp_ref), reference (1, 1)",
        "reference_accuracy": r,
        "hypervolume_at_reference": f"as hypervolume, reference (1 - {r:g}, 0): only accuracy above {r:g} counts",
        "hypervolume_linear_at_reference": f"as hypervolume_linear, reference (1 - {r:g}, 1)",
        "edp_ref_mJms": ranges.ranges["edp_mJms"][1],
        "methods": table, "verdict": _verdict(table), "verdict_at_reference": _verdict(table, "hypervolume_at_reference"),
        "accuracy_evaluations": shared.n_scored, "accuracy_eval_s": round(shared.eval_s, 3),
        "runs_dir": None if store is None else str(store.path), "runs_reused": n_reused, "runs_resumed": n_resumed,
    }


def _verdict(table: Mapping[str, Any], key: str = "hypervolume") -> dict[str, Any]:
    if "joint" not in table:
        return {}
    j = table["joint"]
    out: dict[str, Any] = {}
    for m, row in table.items():
        if m == "joint":
            continue
        out[f"joint_ge_{m}"] = j[f"{key}_mean"] >= row[f"{key}_mean"]
    if "two_stage" in table:
        ts = table["two_stage"]
        out["joint_beats_two_stage_by_more_than_one_std"] = (
            j[f"{key}_mean"] - ts[f"{key}_mean"] > max(j[f"{key}_std"], ts[f"{key}_std"])
        )
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`compare` result (hypervolume as mean ± std)."""
    ref = result.get("reference_accuracy")
    extra = "" if ref is None else f" HV acc > {ref:g} vs log EDP | HV acc > {ref:g} vs EDP (linear) |"
    lines = ["| method | HV acc vs log EDP | HV acc vs EDP (linear) | best accuracy | min EDP (mJ·ms) | evaluations |"
             + extra, "|---|---|---|---|---|---|" + ("---|---|" if extra else "")]
    for m, row in result["methods"].items():
        runs = row["runs"]
        acc = np.mean([r["best_accuracy"] for r in runs if r["best_accuracy"] is not None]) * 100
        edp = np.mean([r["min_edp_mJms"] for r in runs if r["min_edp_mJms"] is not None])
        ev = np.mean([r["evaluations"] for r in runs])
        line = (f"| {m} | {row['hypervolume_mean']:.4f} ± {row['hypervolume_std']:.4f} | "
                f"{row['hypervolume_linear_mean']:.4f} ± {row['hypervolume_linear_std']:.4f} | {acc:.2f}% | "
                f"{edp:.4g} | {ev:.0f} |")
        if extra:
            line += (f" {row['hypervolume_at_reference_mean']:.4f} ± {row['hypervolume_at_reference_std']:.4f} | "
                     f"{row['hypervolume_linear_at_reference_mean']:.4f} ± "
                     f"{row['hypervolume_linear_at_reference_std']:.4f} |")
        lines.append(line)
    return "\n".join(lines)
