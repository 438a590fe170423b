"""Evaluations, normalisation ranges, the paper's fitness, constraints and hypervolume.

The paper's fitness is ``w_acc * acc - (1 - w_acc) * lat_norm * energy_norm`` with the
accuracy in percent (as in the paper's code) and latency and energy min-max normalised
to 0..100 over ranges of the configured space. Figures below the range's minimum count
as 0 (the product stays monotone); above the maximum they keep growing past 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crossnas.search.pareto import hypervolume, pareto_mask

HW_METRICS = ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2", "power_W")


@dataclass(frozen=True)
class HardwareCost:
    """Cost-model figures of one candidate (per image)."""

    latency_ms: float
    energy_mJ: float
    edp_mJms: float
    area_mm2: float
    power_W: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    """Everything measured of one candidate."""

    key: str
    accuracy: float
    """Fraction 0..1."""
    cost: HardwareCost
    fidelity: str = "supernet"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        return self.accuracy if name == "accuracy" else float(getattr(self.cost, name))

    def metrics(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, **self.cost.as_dict()}


@dataclass(frozen=True)
class Ranges:
    """Min-max ranges of the hardware metrics: ``{metric: (lo, hi)}``."""

    ranges: Mapping[str, tuple[float, float]]
    source: str = "given"
    """``given`` (config), ``sampled`` (estimated) or ``mixed``."""
    samples: int = 0

    def norm(self, metric: str, value: float | np.ndarray) -> float | np.ndarray:
        """``100 * (value - lo) / (hi - lo)``, floored at 0."""
        lo, hi = self.ranges[metric]
        return np.maximum(100.0 * (np.asarray(value, dtype=float) - lo) / (hi - lo), 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "samples": self.samples,
                "ranges": {k: [float(a), float(b)] for k, (a, b) in self.ranges.items()}}


def estimate_ranges(costs: Sequence[HardwareCost], given: Mapping[str, tuple[float, float]]) -> Ranges:
    """Ranges from sampled costs, overridden by ``given`` ones.

    A sampled range with ``hi == lo`` is widened to ``hi = lo * 1.01 + 1e-12`` so the
    normalisation stays defined.
    """
    out: dict[str, tuple[float, float]] = {}
    for metric in ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2"):
        if metric in given:
            out[metric] = (float(given[metric][0]), float(given[metric][1]))
            continue
        vals = np.array([getattr(c, metric) for c in costs], dtype=float)
        lo, hi = float(vals.min()), float(vals.max())
        if not hi > lo:
            hi = lo * 1.01 + 1e-12
        out[metric] = (lo, hi)
    n_given = sum(1 for m in out if m in given)
    source = "given" if n_given == len(out) else ("sampled" if n_given == 0 else "mixed")
    return Ranges(out, source, len(costs))


def paper_fitness(ev: Evaluation, w_acc: float, ranges: Ranges) -> float:
    """``w_acc * acc% - (1 - w_acc) * lat_norm * energy_norm`` (higher is better)."""
    lat = float(ranges.norm("latency_ms", ev.cost.latency_ms))
    en = float(ranges.norm("energy_mJ", ev.cost.energy_mJ))
    return w_acc * 100.0 * ev.accuracy - (1.0 - w_acc) * lat * en


def violations(cost: HardwareCost, limits: Mapping[str, float]) -> list[str]:
    """The constraints ``cost`` breaks, e.g. ``["area_mm2 312.5 > 100"]``."""
    return [f"{m} {getattr(cost, m):.4g} > {lim:.4g}" for m, lim in limits.items() if getattr(cost, m) > lim]


def objective_matrix(evals: Sequence[Evaluation], objectives: Sequence[str]) -> np.ndarray:
    """``(n, 1 + len(objectives))`` minimisation matrix: ``-accuracy`` then the costs."""
    return np.array([[-e.accuracy, *(e.metric(o) for o in objectives)] for e in evals], dtype=float).reshape(
        len(evals), 1 + len(objectives)
    )


def front(evals: Sequence[Evaluation], objectives: Sequence[str]) -> list[Evaluation]:
    """Non-dominated evaluations (accuracy max, ``objectives`` min), sorted by accuracy desc."""
    if not evals:
        return []
    mask = pareto_mask(objective_matrix(evals, objectives))
    out = [e for e, keep in zip(evals, mask, strict=True) if keep]
    return sorted(out, key=lambda e: (-e.accuracy, e.key))


def normalized_hypervolume(evals: Sequence[Evaluation], objectives: Sequence[str], ranges: Ranges) -> float:
    """Hypervolume of ``(1 - accuracy, cost_norm...)`` with every axis in 0..1.

    Each cost is divided by the top of its range (``cost / hi``); the reference point is
    accuracy 0 and every cost at the top of its range, so the value lies in 0..1 and is
    comparable between runs that share the ranges.
    """
    if not evals:
        return 0.0
    pts = np.array(
        [[1.0 - e.accuracy, *(e.metric(o) / ranges.ranges[o][1] for o in objectives)] for e in evals], dtype=float
    )
    return hypervolume(pts, np.ones(1 + len(objectives)))


def log_hypervolume(evals: Sequence[Evaluation], objectives: Sequence[str], ranges: Ranges) -> float:
    """Hypervolume of ``(1 - accuracy, log10(cost / ref)...)``, reference ``(1, 0, ...)``.

    Hardware figures span decades (EDP: 3-4), so a linear axis makes the volume almost
    only a matter of the best accuracy; on a log axis every decade of cost saved counts
    the same. ``ref`` is the top of each metric's range; the unit is accuracy x decades.
    Candidates above a reference contribute nothing.
    """
    if not evals:
        return 0.0
    pts = np.array(
        [[1.0 - e.accuracy, *(np.log10(max(e.metric(o), 1e-300) / ranges.ranges[o][1]) for o in objectives)]
         for e in evals], dtype=float,
    )
    return hypervolume(pts, np.array([1.0] + [0.0] * len(objectives)))
