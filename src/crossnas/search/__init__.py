"""Joint cross-layer search: network, per-layer bits and PIM hardware in one genome.

Public API::

    from crossnas.search import SearchProblem, run_search, SyntheticAccuracy
    problem = SearchProblem(SearchConfig(), SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)
    result = run_search(problem, SyntheticAccuracy, "runs/x")
    result.best["winners"], result.pareto["front"]

Modules: ``genome`` (encoding and operators), ``planner`` (deterministic evolution:
paper SPOS evolution, NSGA-II, random), ``store`` (Optuna study, claims, stale
trials), ``runner`` (worker loop, outputs), ``evaluators`` (supernet / PIM / synthetic
accuracy), ``objectives`` and ``pareto`` (fitness, fronts, hypervolume), ``compare``
(baselines at equal evaluation count).
"""

from __future__ import annotations

from crossnas.search.evaluators import Evaluator, PimAccuracy, SupernetAccuracy, SyntheticAccuracy
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import Evaluation, HardwareCost, Ranges, paper_fitness
from crossnas.search.pareto import crowding_distance, hypervolume, non_dominated_sort, pareto_mask
from crossnas.search.runner import ProgressInfo, SearchProblem, SearchResult, run_search

__all__ = [
    "Candidate",
    "Evaluation",
    "Evaluator",
    "GenomeSpace",
    "HardwareCost",
    "PimAccuracy",
    "ProgressInfo",
    "Ranges",
    "SearchProblem",
    "SearchResult",
    "SupernetAccuracy",
    "SyntheticAccuracy",
    "crowding_distance",
    "hypervolume",
    "non_dominated_sort",
    "paper_fitness",
    "pareto_mask",
    "run_search",
]
