"""The hardware metric names have one definition (crossnas.metrics); the old names alias it."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from crossnas import metrics
from crossnas.cli.evaluate_cmd import COST_KEYS
from crossnas.config.search import METRICS, SearchConfig
from crossnas.search.objectives import HW_METRICS, HardwareCost
from crossnas.search.store import DIRECTIONS, VALUE_NAMES


def test_names_and_order() -> None:
    assert metrics.SEARCHABLE == ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2")
    assert metrics.HW_METRICS == (*metrics.SEARCHABLE, "power_W")
    assert tuple(f.name for f in dataclasses.fields(HardwareCost)) == metrics.HW_METRICS


def test_public_aliases_unchanged() -> None:
    assert METRICS == metrics.SEARCHABLE
    assert HW_METRICS == metrics.HW_METRICS
    assert COST_KEYS == metrics.HW_METRICS
    assert VALUE_NAMES == ("accuracy", "latency_ms", "energy_mJ", "edp_mJms", "area_mm2")
    assert len(DIRECTIONS) == len(VALUE_NAMES)


def test_objectives_accept_exactly_the_searchable_metrics() -> None:
    for m in metrics.SEARCHABLE:
        assert SearchConfig(mode="pareto", objectives=(m,)).objectives == (m,)
    with pytest.raises(ValidationError):
        SearchConfig(mode="pareto", objectives=("power_W",))  # type: ignore[arg-type]
