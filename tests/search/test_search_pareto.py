"""Pareto dominance, sorting, crowding and hypervolume: invariants and exact oracles."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from crossnas.search.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_mask,
)


def points(m: int, max_n: int = 7):
    return st.integers(1, max_n).flatmap(
        lambda n: arrays(np.float64, (n, m), elements=st.floats(0.0, 1.0, allow_nan=False, width=16))
    )


def hv_inclusion_exclusion(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume as the volume of a union of boxes [p_i, ref] by inclusion-exclusion."""
    p = p[np.all(p < ref, axis=1)]
    total = 0.0
    for k in range(1, len(p) + 1):
        for subset in itertools.combinations(range(len(p)), k):
            corner = p[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * float(np.prod(np.clip(ref - corner, 0, None)))
    return total


@settings(max_examples=60, deadline=None)
@given(points(2))
def test_hypervolume_2d_matches_inclusion_exclusion(p: np.ndarray) -> None:
    ref = np.array([1.0, 1.0])
    assert abs(hypervolume(p, ref) - hv_inclusion_exclusion(p, ref)) < 1e-9


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 4).flatmap(points))
def test_hypervolume_nd_matches_inclusion_exclusion(p: np.ndarray) -> None:
    ref = np.ones(p.shape[1])
    assert abs(hypervolume(p, ref) - hv_inclusion_exclusion(p, ref)) < 1e-9


@settings(max_examples=50, deadline=None)
@given(points(3), arrays(np.float64, (3,), elements=st.floats(0.0, 1.0, width=16)))
def test_hypervolume_monotone_and_ignores_dominated(p: np.ndarray, extra: np.ndarray) -> None:
    ref = np.ones(3)
    base = hypervolume(p, ref)
    assert hypervolume(np.vstack([p, extra]), ref) >= base - 1e-12
    # a point dominated by an existing one (or equal to it) adds nothing
    worse = np.minimum(p[0] + 0.1, 1.5)
    assert abs(hypervolume(np.vstack([p, worse]), ref) - base) < 1e-12
    # order does not matter
    assert abs(hypervolume(p[::-1], ref) - base) < 1e-12


def test_hypervolume_known_values() -> None:
    assert hypervolume(np.array([[0.5, 0.5]]), np.array([1.0, 1.0])) == 0.25
    # staircase of two points: 0.5*0.8 + 0.3*0.2... computed by hand: union of [0.2,1]x[0.5,1] and [0.5,1]x[0.2,1]
    assert abs(hypervolume(np.array([[0.2, 0.5], [0.5, 0.2]]), np.array([1.0, 1.0])) - (0.8 * 0.5 + 0.5 * 0.3)) < 1e-12
    assert hypervolume(np.array([[1.0, 0.1]]), np.array([1.0, 1.0])) == 0.0  # on the reference: nothing
    assert hypervolume(np.zeros((0, 2)), np.ones(2)) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 3).flatmap(lambda m: points(m, 9)))
def test_sorting_invariants(p: np.ndarray) -> None:
    mask = pareto_mask(p)
    ranks = non_dominated_sort(p)
    assert mask.any()
    assert np.array_equal(ranks == 0, mask)
    assert (ranks >= 0).all()
    for i, j in itertools.permutations(range(len(p)), 2):
        if dominates(p[i], p[j]):
            assert ranks[i] < ranks[j]
    for i in range(len(p)):
        if ranks[i] > 0:  # dominated by someone in the previous front
            assert any(dominates(p[k], p[i]) for k in np.flatnonzero(ranks == ranks[i] - 1))


def test_crowding_distance_boundaries_infinite() -> None:
    p = np.array([[0.0, 1.0], [0.2, 0.7], [0.5, 0.4], [1.0, 0.0]])
    d = crowding_distance(p)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert np.isfinite(d[1]) and np.isfinite(d[2]) and d[1] > 0
    # the point in the sparser region is more isolated
    assert d[2] > d[1]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30).flatmap(
    lambda n: arrays(np.float64, (n, 2), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]))))
def test_two_objective_front_matches_the_definition(p: np.ndarray) -> None:
    """The O(n log n) two-objective path against dominance itself (ties and duplicates included)."""
    expected = np.array([not any(dominates(p[j], p[i]) for j in range(len(p))) for i in range(len(p))])
    assert np.array_equal(pareto_mask(p), expected)
