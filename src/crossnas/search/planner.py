"""Deterministic generation planning: the evolution as a pure function of the results.

The planner decides which genomes generation ``g`` evaluates from the seed and the
results of generations ``0 .. g-1`` only. Nothing else is kept in memory: any worker,
on any machine, after any crash, replays the same plan from the stored trials and so
agrees on the work left. Generation ``g`` draws its random numbers from
``numpy.random.default_rng([seed, g, run])``.

Generation 0 is ``population`` uniformly drawn valid, feasible, distinct genomes (shared
by all runs). Each later generation is the union of the children of every *run*:

- :class:`PaperRun` (one per ``w_acc``): parents = the ``top_k`` fittest genomes the run
  has seen (paper fitness), ``n_mutations`` children by per-gene mutation of a random
  parent, ``n_crossovers`` by uniform crossover of two random parents (SPOS evolution).
- :class:`NSGA2Run`: NSGA-II. The population is the best ``population`` of the previous
  population and its offspring by non-dominated rank then crowding distance; offspring by
  binary tournament, uniform crossover (``crossover_prob``) and per-gene mutation.
- :class:`RandomRun`: ``population`` fresh random genomes per generation (baseline).

A proposed child is rejected if invalid (network rules, hardware values), already seen
by its run, or over a hard constraint (costed in one batched call per block of
proposals). After ``max_rejected`` rejections in a row the generation is cut short; if no
candidate of the whole search ever met the constraints, that is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crossnas.errors import CrossnasError
from crossnas.search.costs import CostCache
from crossnas.search.genome import GenomeSpace
from crossnas.search.objectives import (
    Evaluation,
    PimScore,
    Ranges,
    objective_matrix,
    paper_fitness,
    violations,
    with_pim,
)
from crossnas.search.pareto import crowding_distance, non_dominated_sort, pareto_mask

logger = logging.getLogger(__name__)

Propose = Callable[[], np.ndarray]
Fill = Callable[[int, Propose], list[str]]


class Run:
    """One evolution inside a search (its own parents and visited set)."""

    name: str = "run"

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.history: list[str] = []

    def n_children(self) -> int:
        raise NotImplementedError

    def observe(self, new_keys: Sequence[str], results: Mapping[str, Evaluation]) -> None:
        """Takes in a completed generation (all of ``new_keys`` are in ``results``)."""
        self.history.extend(new_keys)

    def children(self, genomes: GenomeSpace, rng: np.random.Generator, fill: Fill) -> list[str]:
        raise NotImplementedError

    def score(self, ev: Evaluation) -> float:
        """Higher is better (progress display and winners)."""
        return ev.accuracy


class PaperRun(Run):
    """The CrossNAS paper's evolution with the weighted fitness for one ``w_acc``."""

    def __init__(self, w_acc: float, ranges: Ranges, *, top_k: int, n_mutations: int, n_crossovers: int,
                 mutation_prob: float, genomes: GenomeSpace) -> None:
        super().__init__()
        self.name = f"w_acc={w_acc:g}"
        self.w_acc, self.ranges = w_acc, ranges
        self.top_k, self.n_mut, self.n_cross, self.p = top_k, n_mutations, n_crossovers, mutation_prob
        self.genomes = genomes
        self.parents: list[np.ndarray] = []

    def n_children(self) -> int:
        return self.n_mut + self.n_cross

    def score(self, ev: Evaluation) -> float:
        return paper_fitness(ev, self.w_acc, self.ranges)

    def observe(self, new_keys: Sequence[str], results: Mapping[str, Evaluation]) -> None:
        super().observe(new_keys, results)
        ranked = sorted(self.history, key=lambda k: (-self.score(results[k]), k))
        self.parents = [self.genomes.vec_of_key(k) for k in ranked[: self.top_k]]

    def children(self, genomes: GenomeSpace, rng: np.random.Generator, fill: Fill) -> list[str]:
        if not self.parents:
            return []
        par = self.parents

        def mutant() -> np.ndarray:
            return genomes.mutate(par[int(rng.integers(len(par)))], self.p, rng)

        def cross() -> np.ndarray:
            i, j = rng.choice(len(par), size=2, replace=len(par) < 2)
            return genomes.crossover(par[int(i)], par[int(j)], rng)

        return fill(self.n_mut, mutant) + fill(self.n_cross, cross)


class NSGA2Run(Run):
    """NSGA-II over accuracy (max) and hardware objectives (min)."""

    def __init__(self, objectives: Sequence[str], *, population: int, mutation_prob: float,
                 crossover_prob: float, genomes: GenomeSpace) -> None:
        super().__init__()
        self.name = "nsga2"
        self.objectives = tuple(objectives)
        self.n, self.p, self.cx = population, mutation_prob, crossover_prob
        self.genomes = genomes
        self.pop: list[str] = []
        self.rank: np.ndarray = np.zeros(0, dtype=np.int64)
        self.crowd: np.ndarray = np.zeros(0)
        self.vecs: list[np.ndarray] = []

    def n_children(self) -> int:
        return self.n

    def observe(self, new_keys: Sequence[str], results: Mapping[str, Evaluation]) -> None:
        super().observe(new_keys, results)
        union = list(dict.fromkeys([*self.pop, *new_keys]))
        union.sort()
        f = objective_matrix([results[k] for k in union], self.objectives)
        ranks = non_dominated_sort(f)
        crowd = np.zeros(len(union))
        for r in np.unique(ranks):
            idx = np.flatnonzero(ranks == r)
            crowd[idx] = crowding_distance(f[idx])
        order = sorted(range(len(union)), key=lambda i: (ranks[i], -crowd[i], union[i]))[: self.n]
        self.pop = [union[i] for i in order]
        # rank/crowding recomputed within the survivors for tournaments
        f = f[order]
        self.rank = non_dominated_sort(f)
        self.crowd = np.zeros(len(order))
        for r in np.unique(self.rank):
            idx = np.flatnonzero(self.rank == r)
            self.crowd[idx] = crowding_distance(f[idx])
        self.vecs = [self.genomes.vec_of_key(k) for k in self.pop]

    def _tournament(self, rng: np.random.Generator) -> np.ndarray:
        i, j = (int(x) for x in rng.integers(len(self.pop), size=2))
        if (self.rank[j], -self.crowd[j]) < (self.rank[i], -self.crowd[i]):
            i = j
        return self.vecs[i]

    def children(self, genomes: GenomeSpace, rng: np.random.Generator, fill: Fill) -> list[str]:
        if not self.pop:
            return []

        def child() -> np.ndarray:
            a = self._tournament(rng)
            if rng.random() < self.cx:
                a = genomes.crossover(a, self._tournament(rng), rng)
            return genomes.mutate(a, self.p, rng)

        return fill(self.n, child)

    def score(self, ev: Evaluation) -> float:
        return ev.accuracy


class RandomRun(Run):
    """Random search: fresh uniform samples every generation."""

    def __init__(self, population: int) -> None:
        super().__init__()
        self.name = "random"
        self.n = population

    def n_children(self) -> int:
        return self.n

    def children(self, genomes: GenomeSpace, rng: np.random.Generator, fill: Fill) -> list[str]:
        return fill(self.n, lambda: genomes.random(rng))


@dataclass
class Stage:
    """One generation's work: ``keys`` (unique, in plan order) to be evaluated, then
    (``pim_aware``) ``pim_keys``: the candidates whose PIM score the current round needs."""

    index: int
    keys: list[str]
    per_run: list[list[str]] = field(default_factory=list)
    pim_keys: list[str] = field(default_factory=list)
    pim_scored: list[str] = field(default_factory=list)
    """Keys whose PIM scores this generation's rounds took in (replayed from the store)."""


class PimSelection:
    """Which candidates deserve a PIM score: those that can win or shape the search.

    For every fitness weight the ``top_k`` candidates by paper fitness, then every member
    of the front (accuracy vs ``objectives``), in that order, over the evaluations given
    (PIM scores already applied). The planner repeats the selection until every selected
    candidate has a PIM score: a supernet score is (nearly always) an upper bound of the
    PIM score, so the final top-k and front are those of the PIM scores.

    Args:
        w_acc: fitness weights.
        top_k: candidates per weight.
        objectives: hardware objectives of the front.
    """

    def __init__(self, w_acc: Sequence[float], top_k: int, objectives: Sequence[str]) -> None:
        self.w_acc, self.top_k, self.objectives = tuple(w_acc), int(top_k), tuple(objectives)

    def __call__(self, evals: Mapping[str, Evaluation], ranges: Ranges) -> list[str]:
        keys = sorted(evals)
        if not keys:
            return []
        evs = [evals[k] for k in keys]
        out: dict[str, None] = {}
        if self.top_k > 0:
            for w in self.w_acc:
                fit = np.array([paper_fitness(e, w, ranges) for e in evs])
                order = sorted(range(len(keys)), key=lambda i: (-fit[i], keys[i]))
                out.update(dict.fromkeys(keys[i] for i in order[: self.top_k]))
        mask = pareto_mask(objective_matrix(evs, self.objectives))
        out.update(dict.fromkeys(k for k, m in zip(keys, mask, strict=True) if m))
        return list(out)


class Planner:
    """Replays and extends the generations of a search from its results.

    Args:
        genomes: the genome space.
        costs: cost cache (plan-time costing for constraints; shared with the executor).
        runs: the evolutions (one per ``w_acc``, or one NSGA-II, or random).
        seed: search seed.
        population: size of generation 0.
        generations: number of generations, generation 0 included.
        limits: hard constraints ``{metric: max}``.
        max_rejected: consecutive rejections before a generation is cut short.
        ranges: normalisation ranges; their minima are lowered to cover every evaluated
            candidate at each generation boundary (runs with a ``ranges`` attribute get them).
        pim_select: ``pim_aware`` searches: the :class:`PimSelection`; after each generation
            its candidates get PIM scores before the runs observe the generation.
    """

    def __init__(self, genomes: GenomeSpace, costs: CostCache, runs: Sequence[Run], *, seed: int,
                 population: int, generations: int, limits: Mapping[str, float] | None = None,
                 max_rejected: int = 2000, ranges: Ranges | None = None,
                 pim_select: PimSelection | None = None) -> None:
        self.genomes, self.costs, self.runs = genomes, costs, list(runs)
        if pim_select is not None and ranges is None:
            raise ValueError("Planner: pim_select needs the normalisation ranges (paper fitness of the top-k)")
        self.ranges = ranges
        self.pim_select = pim_select
        self.pim_known: dict[str, PimScore] = {}
        self.visible: dict[str, None] = {}
        self.seed, self.population, self.generations = int(seed), int(population), int(generations)
        self.limits = dict(limits or {})
        self.max_rejected = int(max_rejected)
        self.stages: list[Stage] = []
        self.n_feasible = 0
        self.n_infeasible = 0
        self.n_invalid = 0
        self.n_duplicate = 0
        self._infeasible: set[str] = set()
        self._best_seen: dict[str, float] = {}

    # ---- public ------------------------------------------------------------------------
    def current(self, results: Mapping[str, Evaluation], pim: Mapping[str, PimScore] | None = None) -> Stage | None:
        """The first generation not fully evaluated (planning it if needed); ``None`` when done.

        A returned stage with ``pim_keys`` is in its PIM phase: those candidates need PIM
        scores (``pim``: every stored score) before the generation is complete.
        """
        pim = pim or {}
        while True:
            if self.stages and not all(k in results for k in self.stages[-1].keys):
                return self.stages[-1]
            if self.stages:
                self._cover_ranges()
                if self.pim_select is not None:
                    last = self.stages[-1]
                    last.pim_keys = self._pim_round(results, pim)
                    if last.pim_keys:
                        return last
            if len(self.stages) >= self.generations:
                return None
            if self.stages:
                last = self.stages[-1]
                merged = self.merged(results)
                for run, keys in zip(self.runs, last.per_run, strict=True):
                    run.observe(keys, merged)
            self.stages.append(self._plan(len(self.stages)))
            self.visible.update(dict.fromkeys(self.stages[-1].keys))
            if not self.stages[-1].keys:  # converged: nothing new to try
                logger.info("generation %d has no new candidates; the search ends", len(self.stages) - 1)
                self.generations = len(self.stages)

    def merged(self, results: Mapping[str, Evaluation]) -> dict[str, Evaluation]:
        """The evaluations of the planned generations, with the PIM scores taken in so far."""
        vis = {k: results[k] for k in self.visible if k in results}
        return with_pim(vis, self.pim_known) if self.pim_known else vis

    def _cover_ranges(self) -> None:
        if self.ranges is None:
            return
        new = [self.costs.get(k) for k in self.stages[-1].keys if k in self.costs]
        ranges = self.ranges.cover(new)
        if ranges is not self.ranges:
            self.ranges = ranges
            for run in self.runs:
                if hasattr(run, "ranges"):
                    run.ranges = ranges

    def _pim_round(self, results: Mapping[str, Evaluation], pim: Mapping[str, PimScore]) -> list[str]:
        """PIM-score keys the current round still needs (``[]``: the generation is complete).

        Rounds are replayed from the stored scores: a round's selection is taken in only
        when all of it is scored, so every worker and every resume agrees on the rounds.
        """
        assert self.pim_select is not None
        stage = self.stages[-1]
        while True:
            assert self.ranges is not None  # checked in __init__
            want = [k for k in self.pim_select(self.merged(results), self.ranges) if k not in self.pim_known]
            if not want:
                return []
            missing = [k for k in want if k not in pim]
            if missing:
                return missing
            for k in want:
                self.pim_known[k] = pim[k]
            stage.pim_scored.extend(want)

    def n_pim(self) -> int:
        """PIM scores the planned generations have taken in."""
        return len(self.pim_known)

    def expected_total(self) -> int:
        """Planned evaluations so far plus an upper bound for the generations to come."""
        per = sum(r.n_children() for r in self.runs)
        if not self.stages:
            return self.population + max(self.generations - 1, 0) * per
        planned = sum(len(s.keys) for s in self.stages)
        return planned + max(self.generations - len(self.stages), 0) * per

    # ---- planning ------------------------------------------------------------------------
    def _plan(self, g: int) -> Stage:
        if g == 0:
            rng = np.random.default_rng([self.seed, 0, 0])
            seen: set[str] = set()
            keys = self._fill(self.population, lambda: self.genomes.random(rng), seen)
            for run in self.runs:
                run.seen.update(keys)
            return Stage(0, keys, [list(keys) for _ in self.runs])
        per_run = []
        for r, run in enumerate(self.runs):
            rng = np.random.default_rng([self.seed, g, r + 1])

            def fill(n: int, prop: Propose, run: Run = run) -> list[str]:
                return self._fill(n, prop, run.seen)

            per_run.append(run.children(self.genomes, rng, fill))
        keys = list(dict.fromkeys(k for ks in per_run for k in ks))
        return Stage(g, keys, per_run)

    def _fill(self, need: int, propose: Propose, seen: set[str]) -> list[str]:
        """Up to ``need`` new valid, feasible genomes from ``propose`` (adds them to ``seen``)."""
        accepted: list[str] = []
        streak = 0
        while len(accepted) < need and streak < self.max_rejected:
            block: dict[str, np.ndarray] = {}
            while len(block) < need - len(accepted) and streak < self.max_rejected:
                vec = propose()
                if not self.genomes.is_valid(vec):
                    self.n_invalid += 1
                    streak += 1
                    continue
                key = self.genomes.key(vec)
                if key in seen or key in block or key in self._infeasible:
                    if key in self._infeasible:
                        self.n_infeasible += 1
                    else:
                        self.n_duplicate += 1
                    streak += 1
                    continue
                block[key] = vec
            if not block:
                break
            cands = [self.genomes.candidate(v) for v in block.values()]
            for cand, cost in zip(cands, self.costs.costs(cands), strict=True):
                bad = violations(cost, self.limits) if self.limits else []
                if not all(np.isfinite(getattr(cost, m)) for m in self.limits or ("latency_ms",)):
                    bad = ["does not fit on the chip"]
                if bad:
                    self.n_infeasible += 1
                    self._infeasible.add(cand.key)
                    for m in self.limits:
                        self._best_seen[m] = min(self._best_seen.get(m, np.inf), getattr(cost, m))
                    streak += 1
                    continue
                self.n_feasible += 1
                streak = 0
                seen.add(cand.key)
                accepted.append(cand.key)
        if streak >= self.max_rejected and self.n_feasible == 0 and self.n_infeasible > 0:
            lims = ", ".join(f"max_{m}={v:g}" for m, v in self.limits.items())
            best = ", ".join(f"{m} {v:.4g}" for m, v in self._best_seen.items())
            raise CrossnasError(
                f"search.constraints: no candidate met {lims} after {streak} rejected samples "
                f"({self.n_infeasible} over the limits) "
                f"(lowest seen: {best}); relax the constraints or enlarge the space"
            )
        if len(accepted) < need:
            logger.info("generation cut short: %d of %d new candidates after %d rejections in a row",
                        len(accepted), need, streak)
        return accepted
