"""Hardware costs of candidates: one batched cost-model call per request, cached by key."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.metrics import HW_METRICS
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import HardwareCost

CostFn = Callable[[Sequence[dict[str, Any]], Sequence[HardwareConfig]], Any]
"""``(network dicts, hardware configs) -> batch`` with arrays ``latency_ms, energy_mJ,
edp_mJms, area_mm2, power_W`` of shape ``(n,)`` (:func:`crossnas.hw.cost_networks`)."""


def _parse_network(d: dict[str, Any]) -> Any:
    from crossnas.hw import network_from_dict

    return network_from_dict(d)


def default_cost_fn() -> CostFn:
    """:func:`crossnas.hw.cost_networks` (imported lazily), lenient: a candidate the chip
    cannot hold gets infinite figures (the planner rejects it as infeasible) instead of
    stopping the search."""
    from functools import partial

    from crossnas.hw import cost_networks

    return partial(cost_networks, strict=False)  # type: ignore[return-value]


class CostCache:
    """Computes and remembers the hardware cost of genomes.

    Args:
        genomes: the genome space (decoding, network dicts).
        cost_fn: the batched cost model; default :func:`crossnas.hw.cost_networks`.
    """

    def __init__(self, genomes: GenomeSpace, cost_fn: CostFn | None = None) -> None:
        self.genomes = genomes
        self.cost_fn = cost_fn or default_cost_fn()
        # the cost model's own network objects, parsed once per network (not per call)
        self._parse = _parse_network if cost_fn is None else None
        self._nets: dict[str, Any] = {}
        self._cache: dict[str, HardwareCost] = {}
        self.n_calls = 0
        self.n_costed = 0
        self.seconds = 0.0

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def put(self, key: str, cost: HardwareCost) -> None:
        self._cache[key] = cost

    def get(self, key: str) -> HardwareCost:
        return self._cache[key]

    def costs(self, candidates: Sequence[Candidate]) -> list[HardwareCost]:
        """Costs of ``candidates``; the uncached ones in one batched cost-model call."""
        todo = [c for c in dict((c.key, c) for c in candidates if c.key not in self._cache).values()]
        if todo:
            t0 = time.perf_counter()
            nets = [self._network(c) for c in todo]
            batch = self.cost_fn(nets, [c.hardware for c in todo])
            arrays = {
                m: np.asarray(getattr(batch, m), dtype=float).reshape(-1)
                for m in HW_METRICS
            }
            for i, c in enumerate(todo):
                self._cache[c.key] = HardwareCost(**{m: float(a[i]) for m, a in arrays.items()})
            self.n_calls += 1
            self.n_costed += len(todo)
            self.seconds += time.perf_counter() - t0
        return [self._cache[c.key] for c in candidates]

    def _network(self, cand: Candidate) -> Any:
        d = self.genomes.network_dict(cand.spec)
        if self._parse is None:
            return d
        arch = cand.arch
        if arch not in self._nets:
            self._nets[arch] = self._parse(d)
        return self._nets[arch]
