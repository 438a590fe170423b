"""Running a search: the worker loop, multi-process workers, the run-directory outputs.

A worker repeats: read the study, replay the plan (:class:`~crossnas.search.planner.Planner`)
to find the first unfinished generation, claim a share of its unclaimed genomes (trials
created RUNNING), re-read to drop claims that lost a race, score each claim and store it
at once. Hardware costs come from the plan's batched cost call; accuracies from the
evaluator, reused across hardware variants of the same network when the evaluator is
hardware-independent. When every generation is complete each worker returns and the
command writes ``search.json``, ``pareto.json`` and ``best.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.search.costs import CostCache, CostFn
from crossnas.search.evaluators import Evaluator
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import (
    Evaluation,
    Ranges,
    accuracy_fields,
    estimate_ranges,
    front,
    normalized_hypervolume,
    paper_fitness,
    with_pim,
)
from crossnas.search.planner import NSGA2Run, PaperRun, PimSelection, Planner, Run
from crossnas.search.store import (
    HB_PREFIX,
    PIM_SUFFIX,
    TrialStore,
    pim_key,
    redact,
    resolve_storage_url,
)
from crossnas.utils.io import stable_hash, write_json

logger = logging.getLogger(__name__)

EvaluatorFactory = Callable[[], Evaluator]


@dataclass(frozen=True)
class SearchProblem:
    """Everything that defines a search's results (and its fingerprint).

    Args:
        config: the ``search:`` section.
        space: network/quantization space (must match the supernet).
        hardware: base hardware (fields not searched).
        input_shape: ``(C, H, W)``.
        n_classes: classes of the dataset.
        identity: extra JSON-able facts that change results (e.g. supernet checkpoint hash).
    """

    config: SearchConfig
    space: SpaceConfig
    hardware: HardwareConfig
    input_shape: tuple[int, int, int]
    n_classes: int
    identity: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        cfg = self.config.model_dump(mode="json", exclude={"poll_s", "worker_lease_s", "study_name", "claim_batch"})
        return stable_hash({
            "search": cfg, "space": self.space.model_dump(mode="json"),
            "hardware": self.hardware.model_dump(mode="json"), "input_shape": list(self.input_shape),
            "n_classes": self.n_classes, "identity": dict(self.identity),
        })

    def genomes(self) -> GenomeSpace:
        return GenomeSpace(self.space, self.hardware, self.config.hardware_genes, self.input_shape,
                           self.n_classes, search_bits=self.config.search_bits)


@dataclass
class ProgressInfo:
    """What a progress display shows."""

    generation: int
    generations: int
    evaluated: int
    expected: int
    mode: str
    best_fitness: float | None = None
    front_size: int | None = None
    done: bool = False
    pim_scored: int = 0
    """PIM scores stored so far (``pim_aware``)."""


ProgressFn = Callable[[ProgressInfo], None]


@dataclass
class WorkerStats:
    """Counters and timers of one worker (seconds)."""

    evaluated: int = 0
    cached_accuracy: int = 0
    lost_races: int = 0
    eval_s: float = 0.0
    wall_s: float = 0.0
    storage_s: float = 0.0
    cost_s: float = 0.0
    cost_calls: int = 0
    pim_scored: int = 0
    pim_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        over = (self.wall_s - self.eval_s - self.pim_s) / self.evaluated * 1e3 if self.evaluated else None
        return {"evaluated_here": self.evaluated, "accuracy_reused": self.cached_accuracy,
                "lost_claim_races": self.lost_races, "wall_s": round(self.wall_s, 4),
                "accuracy_eval_s": round(self.eval_s, 4), "storage_s": round(self.storage_s, 4),
                "cost_model_s": round(self.cost_s, 4), "cost_model_calls": self.cost_calls,
                "pim_scored_here": self.pim_scored, "pim_score_s": round(self.pim_s, 4),
                "pim_s_per_candidate": round(self.pim_s / self.pim_scored, 4) if self.pim_scored else None,
                "overhead_ms_per_candidate": None if over is None else round(over, 4)}


# ---- building blocks --------------------------------------------------------------------------
def sample_ranges(problem: SearchProblem, genomes: GenomeSpace, costs: CostCache) -> Ranges:
    """Normalisation ranges: given ones from the config, the rest estimated by sampling."""
    norm = problem.config.normalization
    given = {k: (float(a), float(b)) for k, (a, b) in norm.ranges.items()}
    if len(given) == 4:
        return estimate_ranges([], given)
    rng = np.random.default_rng([problem.config.seed, 7919])
    cands: list[Candidate] = []
    seen: set[str] = set()
    tries = 0
    while len(cands) < norm.samples and tries < 50 * norm.samples:
        tries += 1
        vec = genomes.random(rng)
        if not genomes.is_valid(vec):
            continue
        key = genomes.key(vec)
        if key in seen:
            continue
        seen.add(key)
        cands.append(genomes.candidate(vec))
    if len(cands) < 2:
        raise CrossnasError("search.normalization: fewer than 2 valid candidates could be sampled; check the space")
    return estimate_ranges(costs.costs(cands), given)


def build_runs(problem: SearchProblem, genomes: GenomeSpace, ranges: Ranges) -> list[Run]:
    """One :class:`PaperRun` per ``w_acc`` (paper mode) or one :class:`NSGA2Run` (pareto)."""
    cfg, evo = problem.config, problem.config.evolution
    if cfg.mode == "pareto":
        return [NSGA2Run(cfg.objectives, population=evo.population, mutation_prob=evo.mutation_prob,
                         crossover_prob=evo.crossover_prob, genomes=genomes)]
    return [PaperRun(w, ranges, top_k=evo.top_k, n_mutations=evo.n_mutations, n_crossovers=evo.n_crossovers,
                     mutation_prob=evo.mutation_prob, genomes=genomes) for w in cfg.w_acc]


def load_or_sample_ranges(problem: SearchProblem, store: TrialStore, genomes: GenomeSpace,
                          costs: CostCache) -> Ranges:
    stored = store.get_attr("crossnas.ranges")
    if stored is not None:
        return Ranges({k: (float(a), float(b)) for k, (a, b) in stored["ranges"].items()},
                      stored.get("source", "sampled"), int(stored.get("samples", 0)))
    ranges = sample_ranges(problem, genomes, costs)
    store.set_attr("crossnas.ranges", ranges.to_json())
    return ranges


def _best_for_display(problem: SearchProblem, results: Mapping[str, Evaluation], ranges: Ranges) -> tuple[float | None, int | None]:
    if not results:
        return None, None
    evs = list(results.values())
    if problem.config.mode == "paper":
        w = problem.config.w_acc[0]
        return max(paper_fitness(e, w, ranges) for e in evs), None
    return None, len(front(evs, problem.config.objectives))


# ---- the worker loop ------------------------------------------------------------------------------
def _score_supernet(evaluator: Evaluator, store: TrialStore, view: Any, ids: Sequence[int], cands: Sequence[Any],
                    hw_costs: Sequence[Any], owned: Sequence[bool], stats: WorkerStats,
                    tick: Callable[[int], None]) -> None:
    """Scores the owned claims with the (cheap) evaluator, storing each at once.

    A hardware-independent evaluator's score is reused for every hardware variant of a
    network already scored (``cached`` in the trial)."""
    acc_by_arch: dict[str, float] = {}
    if not evaluator.hardware_dependent:
        for ev in view.results.values():
            acc_by_arch.setdefault(ev.key.partition("|")[0], ev.accuracy)
    done = 0
    for tid, cand, cost, ok in zip(ids, cands, hw_costs, owned, strict=True):
        if not ok:
            continue
        t0 = time.perf_counter()
        cached = cand.arch in acc_by_arch
        if cached:
            acc = acc_by_arch[cand.arch]
        else:
            acc = float(evaluator.evaluate([cand])[0])
            if not evaluator.hardware_dependent:
                acc_by_arch[cand.arch] = acc
        eval_s = time.perf_counter() - t0
        stats.eval_s += eval_s
        if store.complete(tid, Evaluation(cand.key, acc, cost, evaluator.fidelity), eval_s, cached):
            stats.evaluated += 1
            stats.cached_accuracy += int(cached)
            done += 1
        store.heartbeat()
        tick(done)


def _score_pim(evaluator: Evaluator, store: TrialStore, ids: Sequence[int], cands: Sequence[Any],
               hw_costs: Sequence[Any], owned: Sequence[bool], stats: WorkerStats) -> int:
    """PIM-scores the owned claims one by one, storing each at once; returns how many."""
    scorer = getattr(evaluator, "pim_scores", None)
    if scorer is None:
        raise CrossnasError(f"search.accuracy: the {evaluator.fidelity!r} evaluator cannot give PIM scores; "
                            "use fidelity pim_aware")
    n = 0
    for tid, cand, cost, ok in zip(ids, cands, hw_costs, owned, strict=True):
        if not ok:
            continue
        t0 = time.perf_counter()
        score = scorer([cand])[0]
        took = time.perf_counter() - t0
        stats.pim_s += took
        if store.complete_pim(tid, dataclasses.replace(score, eval_s=took), cost):
            n += 1
        store.heartbeat()
    return n


def work(problem: SearchProblem, store: TrialStore, evaluator_factory: EvaluatorFactory,
         cost_fn: CostFn | None = None, progress: ProgressFn | None = None) -> tuple[WorkerStats, Planner, Ranges]:
    """Works on the study until every generation is complete.

    Returns:
        This worker's stats, the replayed planner (final state) and the ranges.
    """
    t_start = time.perf_counter()
    stats = WorkerStats()
    cfg = problem.config
    genomes = problem.genomes()
    costs = CostCache(genomes, cost_fn)
    for key, cost in store.costs_of_all().items():
        costs.put(key, cost)
    ranges = load_or_sample_ranges(problem, store, genomes, costs)
    pim_select = (PimSelection(cfg.w_acc, cfg.accuracy.top_k, cfg.objectives)
                  if cfg.accuracy.multi_fidelity else None)
    planner = Planner(genomes, costs, build_runs(problem, genomes, ranges), seed=cfg.seed,
                      population=cfg.evolution.population, generations=cfg.evolution.generations,
                      limits=cfg.constraints.limits(), max_rejected=cfg.max_rejected, ranges=ranges,
                      pim_select=pim_select)
    evaluator: Evaluator | None = None
    best: float | None = None
    fsize: int | None = None
    shown_at = -1e9
    store.heartbeat(force=True)
    try:
        with store.heartbeat_thread():  # leases stay fresh during long evaluations
            while True:
                view = store.read()
                stage = planner.current(view.results, view.pim)
                if progress is not None:
                    if time.perf_counter() - shown_at > 1.0 or stage is None:  # O(n^2) front: throttled
                        best, fsize = _best_for_display(problem, planner.merged(view.results), planner.ranges or ranges)
                        shown_at = time.perf_counter()
                    progress(ProgressInfo(len(planner.stages) - 1 if stage else planner.generations - 1,
                                          planner.generations, len(view.results), planner.expected_total(), cfg.mode,
                                          best, fsize, done=stage is None, pim_scored=len(view.pim)))
                if stage is None:
                    break
                pim_phase = bool(stage.pim_keys)
                work_keys = [pim_key(k) for k in stage.pim_keys] if pim_phase else stage.keys
                pending = [k for k in work_keys if not view.done(k) and k not in view.running]
                if not pending:
                    store.heartbeat()
                    time.sleep(cfg.poll_s)
                    continue
                live = store.live_workers()
                share = min(math.ceil(len(pending) / len(live)), cfg.claim_batch)
                rank = live.index(store.worker.id)
                mine = pending[rank * share:(rank + 1) * share] or pending[:share]
                if evaluator is None:
                    evaluator = evaluator_factory()
                if pim_phase:
                    mine = [k[: -len(PIM_SUFFIX)] for k in mine]
                cands = [genomes.candidate(genomes.vec_of_key(k)) for k in mine]
                hw_costs = costs.costs(cands)
                ids = store.claim(cands, hw_costs, stage.index, evaluator.fidelity, pim=pim_phase)
                view = store.read()
                owned = store.owned(ids, [pim_key(c.key) if pim_phase else c.key for c in cands], view)
                stats.lost_races += sum(not o for o in owned)
                if pim_phase:
                    stats.pim_scored += _score_pim(evaluator, store, ids, cands, hw_costs, owned, stats)
                    continue
                n_before = len(view.results)

                def tick(done: int, stage_index: int = stage.index, n_before: int = n_before) -> None:
                    if progress is not None:
                        progress(ProgressInfo(stage_index, planner.generations, n_before + done,
                                              planner.expected_total(), cfg.mode))

                _score_supernet(evaluator, store, view, ids, cands, hw_costs, owned, stats, tick)
    except BaseException:
        store.release_mine()
        raise
    finally:
        try:
            store.set_attr(HB_PREFIX + store.worker.id, 0.0)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
    stats.wall_s = time.perf_counter() - t_start
    stats.storage_s = store.seconds
    stats.cost_s, stats.cost_calls = costs.seconds, costs.n_calls
    return stats, planner, planner.ranges or ranges


def _worker_process(problem: SearchProblem, url: str, evaluator_factory: EvaluatorFactory,
                    cost_fn: CostFn | None) -> None:
    """Entry point of an extra ``--workers`` process (spawned): the top of its own process,
    so it applies the evaluator recipe's ``threads`` (torch CPU threads) here."""
    _die_with_parent()
    threads = getattr(evaluator_factory, "threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    store = TrialStore(url, problem.config.study_name, problem.genomes(), problem.fingerprint(),
                       lease_s=problem.config.worker_lease_s)
    work(problem, store, evaluator_factory, cost_fn)


def _die_with_parent() -> None:
    """Linux: deliver SIGKILL to this process when its parent dies (no orphaned workers)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ---- outputs --------------------------------------------------------------------------------
def _entry(ev: Evaluation, genomes: GenomeSpace, trial: int | None, with_hardware: bool = False) -> dict[str, Any]:
    cand = genomes.candidate(genomes.vec_of_key(ev.key))
    acc = accuracy_fields(ev)
    metrics = {**ev.metrics(), **{k: v for k, v in acc.items() if k != "accuracy_source"}}
    out: dict[str, Any] = {
        "key": ev.key, "arch": cand.arch, "hardware_genes": cand.hw_genes_dict(),
        "metrics": metrics, "fidelity": ev.fidelity, "accuracy_source": acc["accuracy_source"], "trial": trial,
    }
    if with_hardware:
        out["layers"] = cand.spec.to_json()
        out["hardware"] = cand.hardware.model_dump(mode="json")
    return out


def summarize(problem: SearchProblem, results: Mapping[str, Evaluation], trial_of: Mapping[str, int],
              ranges: Ranges) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(pareto.json, best.json)`` contents from all evaluations."""
    genomes = problem.genomes()
    cfg = problem.config
    evs = sorted(results.values(), key=lambda e: e.key)
    fr = front(evs, cfg.objectives)
    pareto = {
        "objectives": ["accuracy", *cfg.objectives],
        "directions": ["maximize", *("minimize" for _ in cfg.objectives)],
        "hypervolume": normalized_hypervolume(evs, cfg.objectives, ranges),
        "hypervolume_reference": {"accuracy": 0.0, **{str(o): ranges.ranges[o][1] for o in cfg.objectives}},
        "hypervolume_note": "objectives scaled as (1 - accuracy, metric / reference); volume in 0..1",
        "n_evaluated": len(evs),
        "front": [_entry(e, genomes, trial_of.get(e.key)) for e in fr],
    }
    winners = []
    for w in cfg.w_acc:
        if not evs:
            break
        best = max(evs, key=lambda e: (paper_fitness(e, w, ranges), e.key))
        entry = _entry(best, genomes, trial_of.get(best.key), with_hardware=True)
        winners.append({"w_acc": w, "fitness": paper_fitness(best, w, ranges), **entry})
    best_json = {"mode": cfg.mode, "fitness": "w_acc * accuracy% - (1 - w_acc) * latency_norm * energy_norm",
                 "normalization": ranges.to_json(), "winners": winners}
    return pareto, best_json


@dataclass
class SearchResult:
    """What :func:`run_search` returns."""

    run_dir: Path
    summary: dict[str, Any]
    results: dict[str, Evaluation]
    pareto: dict[str, Any]
    best: dict[str, Any]


def run_search(problem: SearchProblem, evaluator_factory: EvaluatorFactory, out_dir: str | Path, *,
               storage: str | None = None, workers: int = 1, cost_fn: CostFn | None = None,
               progress: ProgressFn | None = None, extra_info: Mapping[str, Any] | None = None,
               evaluator: Evaluator | None = None) -> SearchResult:
    """Runs (or continues, or joins) a search and writes the run-directory outputs.

    Args:
        problem: the search problem.
        evaluator_factory: picklable zero-argument callable building the accuracy evaluator
            (called lazily, once per worker process).
        out_dir: run directory (outputs; the default journal storage file).
        storage: Optuna storage URL (``postgresql://...``, ``sqlite:///...``) or a journal
            file path; ``None`` = ``out_dir/study.journal``.
        workers: worker processes on this machine (this one included).
        cost_fn: batched cost model (default :func:`crossnas.hw.cost_networks`; picklable).
        progress: called with :class:`ProgressInfo` as the search advances.
        extra_info: JSON-able facts added to ``search.json`` (e.g. supernet path).
        evaluator: an already built evaluator for this process (else built by the factory).

    Returns:
        The summary, all evaluations and the output documents.

    Raises:
        CrossnasError: unopenable storage, a study of another config, impossible constraints.
    """
    if workers < 1:
        raise CrossnasError(f"--workers must be at least 1, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    url = resolve_storage_url(storage, out)
    t0 = time.perf_counter()
    store = TrialStore(url, problem.config.study_name, problem.genomes(), problem.fingerprint(),
                       lease_s=problem.config.worker_lease_s)
    procs = []
    if workers > 1:
        ctx = mp.get_context("spawn")
        for _ in range(workers - 1):
            p = ctx.Process(target=_worker_process, args=(problem, url, evaluator_factory, cost_fn), daemon=True)
            p.start()
            procs.append(p)
    try:
        local: EvaluatorFactory = (lambda: evaluator) if evaluator is not None else evaluator_factory  # type: ignore[assignment,return-value]
        stats, planner, ranges = work(problem, store, local, cost_fn, progress)
    finally:
        for p in procs:
            p.join(timeout=None if not _interrupted() else 5)
            if p.is_alive():
                p.kill()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        logger.warning("%d worker process(es) exited with errors %s; the study is complete regardless", len(failed), failed)
    view = store.read()
    results = with_pim(view.results, view.pim)
    pareto, best = summarize(problem, results, view.trial_of, ranges)
    counts = store.trials_summary()
    wall = time.perf_counter() - t0
    stats_json = stats.to_json()
    search_json = {
        "format": "crossnas-search/1",
        "mode": problem.config.mode,
        "config": problem.config.model_dump(mode="json"),
        "space": problem.space.model_dump(mode="json"),
        "hardware": problem.hardware.model_dump(mode="json"),
        "input_shape": list(problem.input_shape),
        "n_classes": problem.n_classes,
        "identity": dict(problem.identity),
        "fingerprint": problem.fingerprint(),
        "seeds": {"search": problem.config.seed, "generation_rng": "numpy default_rng([seed, generation, run])",
                  "normalization_rng": "numpy default_rng([seed, 7919])"},
        "storage": redact(url),
        "study_name": problem.config.study_name,
        "normalization": ranges.to_json(),
        "generations": len(planner.stages),
        "runs": [r.name for r in planner.runs],
        "evaluations": len(view.results),
        "pim_scores": len(view.pim),
        "accuracy": _accuracy_note(problem.config),
        "trials": counts,
        "rejected": {"invalid": planner.n_invalid, "duplicate": planner.n_duplicate,
                     "over_constraints": planner.n_infeasible},
        "workers": workers,
        "timings": {**stats_json, "total_wall_s": round(wall, 4)},
        **({"info": dict(extra_info)} if extra_info else {}),
    }
    write_json(out / "search.json", search_json)
    write_json(out / "pareto.json", pareto)
    write_json(out / "best.json", best)
    summary = {
        "run_dir": str(out), "mode": problem.config.mode, "storage": redact(url),
        "evaluations": len(view.results), "evaluated_here": stats.evaluated, "pim_scores": len(view.pim),
        "generations": len(planner.stages), "front_size": len(pareto["front"]),
        "hypervolume": pareto["hypervolume"],
        "best": [{"w_acc": w["w_acc"], "arch": w["arch"], "hardware_genes": w["hardware_genes"],
                  "fitness": w["fitness"], **w["metrics"]} for w in best["winners"]],
        "wall_s": round(wall, 3),
        "overhead_ms_per_candidate": stats_json["overhead_ms_per_candidate"],
    }
    return SearchResult(out, summary, results, pareto, best)


def _accuracy_note(cfg: SearchConfig) -> dict[str, Any]:
    """What the ``accuracy`` of the outputs is (search.json)."""
    acc = cfg.accuracy
    if acc.multi_fidelity:
        return {"fidelity": acc.fidelity, "meaning": "PIM score (Monte-Carlo mean on the candidate's simulated chip, "
                "validation subset) where one exists (accuracy_source 'pim'), else the supernet score",
                "top_k": acc.top_k, "mc_runs": acc.mc_runs, "val_images": acc.val_images,
                "calibration_images": acc.calibration_images, "device": acc.device, "adc": acc.adc}
    return {"fidelity": acc.fidelity, "meaning": {
        "supernet": "inherited supernet weights, fake-quantized, BN re-estimated (blind to the hardware)",
        "pim": "every candidate on its simulated chip (Monte-Carlo mean)",
        "synthetic": "a deterministic proxy (no data)"}.get(acc.fidelity, acc.fidelity)}


def _interrupted() -> bool:
    import sys

    exc = sys.exc_info()[1]
    return exc is not None


def evaluations_in_order(results: Mapping[str, Evaluation], keys: Sequence[str]) -> list[Evaluation]:
    return [results[k] for k in keys if k in results]
