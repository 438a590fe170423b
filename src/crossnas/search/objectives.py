"""Evaluations, normalisation ranges, the paper's fitness, constraints and hypervolume.

The paper's fitness is ``w_acc * acc - (1 - w_acc) * lat_norm * energy_norm`` with the
accuracy in percent (as in the paper's code) and latency and energy min-max normalised
to 0..100 over ranges of the configured space. The search lowers a range's minimum to
cover every candidate it evaluates (:meth:`Ranges.cover`, recorded as ``widened``), so a
factor is 0 only for the cheapest candidate seen (figures below a given minimum still
count as 0); above the maximum a factor keeps growing past 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crossnas.errors import CrossnasError
from crossnas.metrics import HW_METRICS as HW_METRICS  # re-exported (public name)
from crossnas.metrics import SEARCHABLE
from crossnas.search.pareto import hypervolume, pareto_mask


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
class PimScore:
    """A candidate's accuracy on its own simulated chip (Monte-Carlo, fractions 0..1)."""

    mean: float
    std: float
    runs: tuple[float, ...] = ()
    eval_s: float = 0.0
    images: int = 0
    """Validation images simulated (fewer than configured when the broken-chip screen stopped it)."""
    quantized: float | None = None
    """The same network's digital (fake-quantized) accuracy on the same images."""

    @property
    def drop(self) -> float | None:
        """Accuracy the chip lost on the simulated images (digital minus PIM mean)."""
        return None if self.quantized is None else self.quantized - self.mean

    def to_json(self) -> dict[str, Any]:
        return {"pim_subset_accuracy": self.mean, "pim_accuracy_std": self.std, "pim_runs": list(self.runs),
                "pim_eval_s": self.eval_s, "pim_images": self.images, "pim_subset_quantized": self.quantized}


def with_pim(results: Mapping[str, Evaluation], pim: Mapping[str, PimScore]) -> dict[str, Evaluation]:
    """The evaluations with every available PIM score in place of the supernet score.

    A candidate with a PIM score gets fidelity ``pim`` and as accuracy its on-chip
    estimate ``pim_accuracy_mean``: the supernet score (whole validation split) minus the
    accuracy the chip lost on the simulated subset (digital minus PIM, Monte-Carlo mean),
    clipped to 0..1. A chip that scored *better* than the digital network on the subset
    counts as losing nothing: that is sampling noise, and crediting it would let the
    luckiest draws win (the estimate never exceeds the supernet score). A subset of a few dozen images is too small to rank networks by
    itself (its easy or hard images would favour whichever candidates were simulated), but
    it measures the hardware's damage well. A score without the digital reference (the
    synthetic proxy) is used as it is. Every evaluation keeps its cheap score as
    ``extra["supernet_accuracy"]``; scored ones also carry ``pim_accuracy_std`` and the
    subset figures (``pim_subset_accuracy``, ``pim_subset_quantized``, ``pim_images``).
    """
    out: dict[str, Evaluation] = {}
    for key, ev in results.items():
        p = pim.get(key)
        if p is None:
            out[key] = ev
            continue
        drop = p.drop
        acc = p.mean if drop is None else min(max(ev.accuracy - max(drop, 0.0), 0.0), 1.0)
        extra = {**dict(ev.extra), "supernet_accuracy": ev.accuracy, "supernet_fidelity": ev.fidelity,
                 **p.to_json(), "pim_accuracy_mean": acc}
        out[key] = Evaluation(key, acc, ev.cost, "pim", extra)
    return out


def accuracy_fields(ev: Evaluation) -> dict[str, Any]:
    """Which accuracies an evaluation holds, named: ``accuracy`` (the one the search used),
    ``accuracy_source``, ``supernet_accuracy`` and, when simulated, the PIM mean and std."""
    out: dict[str, Any] = {"accuracy_source": ev.fidelity}
    if ev.fidelity == "pim" and "supernet_accuracy" in ev.extra:
        out["supernet_accuracy"] = float(ev.extra["supernet_accuracy"])
        out["pim_accuracy_mean"] = float(ev.extra["pim_accuracy_mean"])
        out["pim_accuracy_std"] = float(ev.extra["pim_accuracy_std"])
    elif ev.fidelity == "pim":
        out["pim_accuracy_mean"] = ev.accuracy
        if "pim_accuracy_std" in ev.extra:
            out["pim_accuracy_std"] = float(ev.extra["pim_accuracy_std"])
    else:
        out[f"{ev.fidelity or 'supernet'}_accuracy"] = ev.accuracy
    return out


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

    widened: tuple[str, ...] = ()
    """Metrics whose minimum was lowered to cover an evaluated candidate (:meth:`cover`)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "samples": self.samples,
                               "ranges": {k: [float(a), float(b)] for k, (a, b) in self.ranges.items()}}
        if self.widened:
            out["widened"] = list(self.widened)
        return out

    def cover(self, costs: Sequence[HardwareCost], metrics: Sequence[str] = ("latency_ms", "energy_mJ")) -> Ranges:
        """These ranges with each minimum lowered to the lowest of ``costs`` where it is below.

        The paper's fitness multiplies the two normalised factors; a factor floored at 0
        (a candidate cheaper than the range's minimum) would drop the other metric from
        the penalty. The search calls this with every evaluated candidate before ranking.
        """
        if not costs:
            return self
        out = dict(self.ranges)
        widened = list(self.widened)
        for m in metrics:
            lo, hi = out[m]
            low = min(float(getattr(c, m)) for c in costs)
            if low < lo:
                out[m] = (low, hi)
                if m not in widened:
                    widened.append(m)
        if out == dict(self.ranges):
            return self
        return Ranges(out, self.source, self.samples, tuple(widened))


def estimate_ranges(costs: Sequence[HardwareCost], given: Mapping[str, tuple[float, float]]) -> Ranges:
    """Ranges from sampled costs, overridden by ``given`` ones.

    A sampled range with ``hi == lo`` is widened to ``hi = lo * 1.01 + 1e-12`` so the
    normalisation stays defined.
    """
    out: dict[str, tuple[float, float]] = {}
    for metric in SEARCHABLE:
        if metric in given:
            out[metric] = (float(given[metric][0]), float(given[metric][1]))
            continue
        vals = np.array([getattr(c, metric) for c in costs], dtype=float)
        vals = vals[np.isfinite(vals)]  # candidates the chip cannot hold
        if not len(vals):
            raise CrossnasError("search.normalization: no sampled candidate fits on the chip; enlarge "
                                "hardware.chip (tile_rows x tile_cols) or the crossbars")
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


def _check_reference_accuracy(reference_accuracy: float) -> float:
    r = float(reference_accuracy)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"reference_accuracy must be in [0, 1), got {reference_accuracy}")
    return r


def normalized_hypervolume(evals: Sequence[Evaluation], objectives: Sequence[str], ranges: Ranges,
                           reference_accuracy: float = 0.0) -> float:
    """Hypervolume of ``(1 - accuracy, cost_norm...)`` with every axis in 0..1.

    Each cost is divided by the top of its range (``cost / hi``); the reference point is
    accuracy ``reference_accuracy`` (default 0) and every cost at the top of its range, so
    the value lies in 0..(1 - reference_accuracy) and is comparable between runs that
    share the ranges and the reference. Candidates at or below the reference accuracy
    contribute nothing.
    """
    r = _check_reference_accuracy(reference_accuracy)
    if not evals:
        return 0.0
    pts = np.array(
        [[1.0 - e.accuracy, *(e.metric(o) / ranges.ranges[o][1] for o in objectives)] for e in evals], dtype=float
    )
    return hypervolume(pts, np.array([1.0 - r] + [1.0] * len(objectives)))


def log_hypervolume(evals: Sequence[Evaluation], objectives: Sequence[str], ranges: Ranges,
                    reference_accuracy: float = 0.0) -> float:
    """Hypervolume of ``(1 - accuracy, log10(cost / ref)...)``, reference ``(1 - r, 0, ...)``.

    Hardware figures span decades (EDP: 3-4), so a linear axis makes the volume almost
    only a matter of the best accuracy; on a log axis every decade of cost saved counts
    the same. ``ref`` is the top of each metric's range; the unit is accuracy x decades.
    ``r`` is ``reference_accuracy`` (default 0): with ``r > 0`` only accuracy above ``r``
    counts, so cheap but useless designs earn nothing. Candidates at or above a cost
    reference, or at or below the reference accuracy, contribute nothing.
    """
    r = _check_reference_accuracy(reference_accuracy)
    if not evals:
        return 0.0
    pts = np.array(
        [[1.0 - e.accuracy, *(np.log10(max(e.metric(o), 1e-300) / ranges.ranges[o][1]) for o in objectives)]
         for e in evals], dtype=float,
    )
    return hypervolume(pts, np.array([1.0 - r] + [0.0] * len(objectives)))
