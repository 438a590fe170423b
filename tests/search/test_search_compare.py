"""``compare``: resumable runs in a folder, refusal of another config, reference accuracy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.search import SearchProblem, SyntheticAccuracy
from crossnas.search.compare import compare
from crossnas.search.objectives import (
    Evaluation,
    HardwareCost,
    Ranges,
    log_hypervolume,
    normalized_hypervolume,
)

TINY = {"evolution": {"population": 8, "top_k": 3, "n_mutations": 4, "n_crossovers": 4, "generations": 3},
        "normalization": {"samples": 40}}
METHODS = ("joint", "two_stage", "random")
SEEDS = (0, 1)
BUDGET = 24
ROW_KEYS = ("evaluations", "hypervolume", "hypervolume_linear", "hypervolume_at_reference",
            "hypervolume_linear_at_reference", "best_accuracy", "min_edp_mJms")


def problem(**over) -> SearchProblem:
    return SearchProblem(SearchConfig.model_validate({**TINY, **over}), SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)


class Recording(SyntheticAccuracy):
    """Synthetic accuracy that records every network it scores and dies (like ``kill``) on call ``die_at``."""

    def __init__(self, die_at: int | None = None) -> None:
        super().__init__()
        self.die_at = die_at
        self.archs: list[str] = []
        self.calls = 0

    def evaluate(self, candidates):
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise KeyboardInterrupt
        self.archs.extend(c.arch for c in candidates)
        return super().evaluate(candidates)


def figures(result: dict) -> dict:
    return {(m, r["seed"], k): r[k] for m, row in result["methods"].items() for r in row["runs"] for k in ROW_KEYS}


def same(result: dict, expected: dict) -> bool:
    """Same figures (the cost model may round differently in the last bit from one call to the next)."""
    return figures(result) == pytest.approx(figures(expected), rel=1e-12, abs=0)


def saved_archs(runs_dir: Path) -> set[str]:
    out = set()
    for path in runs_dir.glob("*-seed*.json"):
        for evs in json.loads(path.read_text())["parts"].values():
            out.update(e["key"].partition("|")[0] for e in evs)
    return out


def test_killed_compare_continues_without_redoing_finished_runs(tmp_path: Path) -> None:
    # the uninterrupted comparison, in memory, and when each run ended (in evaluator calls)
    ref_eval = Recording()
    ended: list[int] = []
    ref = compare(problem(), ref_eval, seeds=SEEDS, budget=BUDGET, methods=METHODS,
                  progress=lambda m, s, row: ended.append(ref_eval.calls))
    # kill it in the middle of the fourth run (two_stage seed 1): three runs are finished then
    assert ended[3] - ended[2] >= 2
    runs_dir = tmp_path / "compare_runs"
    with pytest.raises(KeyboardInterrupt):
        compare(problem(), Recording(die_at=ended[2] + (ended[3] - ended[2]) // 2 + 1), seeds=SEEDS, budget=BUDGET,
                methods=METHODS, runs_dir=runs_dir)
    states = {p.name: json.loads(p.read_text())["finished"] for p in runs_dir.glob("*-seed*.json")}
    assert states == {"joint-seed0.json": True, "joint-seed1.json": True, "two_stage-seed0.json": True,
                      "two_stage-seed1.json": False}
    finished = {n: ((runs_dir / n).read_bytes(), (runs_dir / n).stat().st_mtime_ns) for n, f in states.items() if f}
    partial = json.loads((runs_dir / "two_stage-seed1.json").read_text())
    assert 0 < partial["evaluations"] < ref["methods"]["two_stage"]["runs"][1]["evaluations"]
    before = saved_archs(runs_dir)

    again = Recording()
    res = compare(problem(), again, seeds=SEEDS, budget=BUDGET, methods=METHODS, runs_dir=runs_dir)
    # the same comparison as never interrupted ...
    assert same(res, ref)
    # ... finished runs untouched, nothing scored twice, the partial run continued
    for name, (data, mtime) in finished.items():
        assert (runs_dir / name).read_bytes() == data and (runs_dir / name).stat().st_mtime_ns == mtime
    assert again.archs and not set(again.archs) & before
    assert res["runs_reused"] == 3 and res["runs_resumed"] == 1
    two = res["methods"]["two_stage"]["runs"]
    assert two[0]["reused"] and not two[1]["reused"] and two[1]["resumed_from"] == partial["evaluations"]

    # everything finished: a rerun scores nothing and gives the same figures
    idle = Recording()
    assert same(compare(problem(), idle, seeds=SEEDS, budget=BUDGET, methods=METHODS, runs_dir=runs_dir), ref)
    assert idle.calls == 0


def test_another_config_is_refused_but_another_reference_is_not(tmp_path: Path) -> None:
    runs_dir = tmp_path / "compare_runs"
    first = compare(problem(), SyntheticAccuracy(), seeds=(0,), budget=16, methods=("joint",), runs_dir=runs_dir)
    files = {p.name: p.read_bytes() for p in runs_dir.iterdir()}
    for prob, budget, needle in [
        (problem(evolution={**TINY["evolution"], "population": 6}), 16, "differs in: search)"),
        (problem(hardware_genes={"crossbar.size": [64, 128]}), 16, "differs in: search)"),
        (SearchProblem(problem().config, SpaceConfig(widths=[16, 32]), HardwareConfig(), (1, 8, 8), 10), 16,
         "differs in: space)"),
        (problem(), 20, "differs in: budget)"),
    ]:
        with pytest.raises(CrossnasError, match="holds compare runs of another config") as err:
            compare(prob, SyntheticAccuracy(), seeds=(0,), budget=budget, methods=("joint",), runs_dir=runs_dir)
        assert needle in str(err.value) and "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in runs_dir.iterdir()} == files
    # the search seed and the reference accuracy are not part of the config: the run is reused
    acc = Recording()
    other = compare(problem(seed=3), acc, seeds=(0,), budget=16, methods=("joint",), runs_dir=runs_dir,
                    reference_accuracy=0.9)
    assert acc.calls == 0 and other["runs_reused"] == 1 and other["reference_accuracy"] == 0.9
    a, b = first["methods"]["joint"]["runs"][0], other["methods"]["joint"]["runs"][0]
    assert a["hypervolume"] == b["hypervolume"] and a["hypervolume_linear"] == b["hypervolume_linear"]
    assert b["hypervolume_at_reference"] < a["hypervolume_at_reference"] < a["hypervolume"]
    with pytest.raises(CrossnasError, match="must be in"):
        compare(problem(), SyntheticAccuracy(), seeds=(0,), budget=16, methods=("joint",), reference_accuracy=1.0)


def ev(key: str, acc: float, edp: float) -> Evaluation:
    return Evaluation(key, acc, HardwareCost(latency_ms=1.0, energy_mJ=edp, edp_mJms=edp, area_mm2=1.0, power_W=1.0))


def test_hypervolume_with_reference_accuracy_ignores_points_below_it() -> None:
    ranges = Ranges({"edp_mJms": (0.0, 1.0)})
    good, cheap_junk, at_ref = ev("a", 0.9, 0.5), ev("b", 0.5, 0.01), ev("c", 0.8, 0.001)
    objs = ("edp_mJms",)
    # accuracy 0: the junk design adds most of the volume (boxes from (0.1, 0.5) and (0.5, 0.01) to (1, 1))
    assert normalized_hypervolume([good, cheap_junk], objs, ranges) == pytest.approx(0.45 + 0.495 - 0.25)
    assert normalized_hypervolume([good, cheap_junk], objs, ranges, 0.0) == normalized_hypervolume(
        [good, cheap_junk], objs, ranges)
    # reference accuracy 0.8: only accuracy above 0.8 counts; designs at or below it add nothing
    for evals in ([good], [good, cheap_junk], [good, cheap_junk, at_ref]):
        assert normalized_hypervolume(evals, objs, ranges, 0.8) == pytest.approx(0.1 * 0.5)
        assert log_hypervolume(evals, objs, ranges, 0.8) == pytest.approx(0.1 * -math.log10(0.5))
    assert normalized_hypervolume([cheap_junk, at_ref], objs, ranges, 0.8) == 0.0
    assert log_hypervolume([cheap_junk], objs, ranges) == pytest.approx(0.5 * 2.0)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="reference_accuracy"):
            normalized_hypervolume([good], objs, ranges, bad)
