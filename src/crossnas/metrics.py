"""The one definition of the hardware metric names (per image).

Lowest floor: imports nothing from crossnas, so every layer (config, hw, search,
pipeline, report, cli) can use it. The order is the order of
:class:`~crossnas.search.objectives.HardwareCost`'s fields.
"""

from __future__ import annotations

from typing import Literal, get_args

SearchableMetric = Literal["latency_ms", "energy_mJ", "edp_mJms", "area_mm2"]
"""A hardware figure the search can minimise (the type of ``search.objectives`` entries)."""

SEARCHABLE: tuple[str, ...] = get_args(SearchableMetric)
"""Hardware figures the search can minimise and normalise: latency, energy, EDP, area."""

HW_METRICS: tuple[str, ...] = (*SEARCHABLE, "power_W")
"""Every hardware figure of the cost model: the searchable ones plus power."""

__all__ = ["HW_METRICS", "SEARCHABLE", "SearchableMetric"]
