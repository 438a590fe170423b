"""Pareto dominance, non-dominated sorting, crowding distance and hypervolume.

Everything here minimises: pass ``-accuracy`` (or ``1 - accuracy``) for objectives to
maximise. Points are arrays of shape ``(n_points, n_objectives)``.
"""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points, shape ``(n,)``. Duplicates are all kept."""
    p = np.asarray(points, dtype=float)
    n = p.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    if p.ndim == 2 and p.shape[1] == 2:
        return _pareto_mask_2d(p)
    le = np.all(p[:, None, :] <= p[None, :, :], axis=2)  # le[i, j]: i <= j everywhere
    lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
    dominated = np.any(le & lt, axis=0)  # j dominated by some i
    return ~dominated


def _pareto_mask_2d(p: np.ndarray) -> np.ndarray:
    """:func:`pareto_mask` for two objectives in O(n log n) (the search's accuracy-vs-cost
    fronts over every candidate; the general form is O(n²) in time and memory).

    Sorted by the first objective, a point is non-dominated iff it has the smallest second
    objective among the points sharing its first one and that value is strictly below every
    second objective of the points before it (an equal one there dominates it)."""
    order = np.lexsort((p[:, 1], p[:, 0]))
    x, y = p[order, 0], p[order, 1]
    keep = np.zeros(len(p), dtype=bool)
    best = np.inf
    i = 0
    while i < len(x):
        j = i
        while j < len(x) and x[j] == x[i]:
            j += 1
        y_min = y[i]  # sorted by y within a tie of x
        if y_min < best:
            keep[order[i:j][y[i:j] == y_min]] = True
            best = y_min
        i = j
    return keep


def non_dominated_sort(points: np.ndarray) -> np.ndarray:
    """Front rank of every point (0 = non-dominated), shape ``(n,)``."""
    p = np.asarray(points, dtype=float)
    n = p.shape[0]
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    le = np.all(p[:, None, :] <= p[None, :, :], axis=2)
    lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    rank = 0
    current = np.flatnonzero(count == 0)
    while current.size:
        ranks[current] = rank
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front, shape ``(n,)`` (boundary points: inf)."""
    p = np.asarray(points, dtype=float)
    n, m = p.shape if p.ndim == 2 else (0, 0)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(p[:, k], kind="stable")
        lo, hi = p[order[0], k], p[order[-1], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if hi > lo:
            dist[order[1:-1]] += (p[order[2:], k] - p[order[:-2], k]) / (hi - lo)
    return dist


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference`` (minimisation).

    Points not strictly better than the reference in every objective contribute nothing.
    Two objectives: one sort and a sweep, O(n log n). More: recursive slicing along the
    last objective (HSO), exact, fine for the front sizes a search produces (< ~1000
    points in 3-4 objectives).

    Args:
        points: ``(n, m)`` objective vectors.
        reference: ``(m,)`` the reference (worst) point.

    Returns:
        The hypervolume (product of the objective units).
    """
    p = np.asarray(points, dtype=float).reshape(-1, np.asarray(reference).size)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    p = p[np.all(p < ref, axis=1)]
    if p.shape[0] == 0:
        return 0.0
    p = p[pareto_mask(p)]
    p = np.unique(p, axis=0)
    return float(_hv(p, ref))


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    m = p.shape[1]
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        order = np.argsort(p[:, 0], kind="stable")
        x, y = p[order, 0], p[order, 1]
        total, best_y = 0.0, ref[1]
        for i in range(len(x)):
            if y[i] < best_y:
                nxt = ref[0]
                total += (nxt - x[i]) * (best_y - y[i])
                best_y = y[i]
        return total
    # slice along the last objective: between consecutive levels, the (m-1)-D volume of the
    # points at or below the level
    order = np.argsort(p[:, -1], kind="stable")
    p = p[order]
    levels = np.append(p[:, -1], ref[-1])
    total = 0.0
    for i in range(p.shape[0]):
        height = levels[i + 1] - levels[i]
        if height <= 0:
            continue
        sub = p[: i + 1, :-1]
        sub = sub[pareto_mask(sub)]
        total += height * _hv(sub, ref[:-1])
    return total
