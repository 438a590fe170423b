"""A rerun stage invalidates the stages after it (stage results chained in pipeline.json).

The stage functions are replaced by fakes that write the files the pipeline checks, each
stamped with the result it was built on, so no training is involved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from crossnas.config.run import RunConfig
from crossnas.pipeline import stages as st
from crossnas.pipeline.run import STAGES, RunPaths, run_pipeline

CFG = {"train": {"epochs": 2, "threads": 1}, "retrain": {"epochs": 2}}


class FakeStages:
    """Stage functions writing their outputs; each output names the result it was built on."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.serial = 0

    def _made(self, stage: str) -> str:
        self.calls.append(stage)
        self.serial += 1
        return f"{stage}#{self.serial}"

    def supernet(self, ctx: Any) -> dict[str, Any]:
        ctx.paths.supernet.mkdir(parents=True, exist_ok=True)
        (ctx.paths.supernet / "run.json").write_text(json.dumps({"made": self._made("supernet")}))
        return {}

    def search(self, ctx: Any) -> dict[str, Any]:
        base = json.loads((ctx.paths.supernet / "run.json").read_text())["made"]
        d = ctx.paths.search
        d.mkdir(parents=True, exist_ok=True)
        journal = d / "study.journal"  # a resumed search continues what is there
        old = json.loads(journal.read_text())["on"] if journal.exists() else []
        journal.write_text(json.dumps({"on": [*old, base]}))
        for name in ("best.json", "pareto.json", "search.json"):
            (d / name).write_text(json.dumps({"made": self._made("search") if name == "best.json" else "", "on": base}))
        return {}

    def retrain(self, ctx: Any) -> dict[str, Any]:  # like the real one: winners/<label>, copied to winner/
        base = json.loads((ctx.paths.search / "best.json").read_text())["made"]
        w = ctx.paths.winners / "w1"
        w.mkdir(parents=True, exist_ok=True)
        (w / "model.json").write_text(json.dumps({"made": self._made("retrain"), "on": base}))
        _copy(w, ctx.paths.winner)
        return {}

    def evaluate(self, ctx: Any) -> dict[str, Any]:
        w = ctx.paths.winners / "w1"
        (w / "evaluation.json").write_text(json.dumps({"made": self._made("evaluate")}))
        _copy(w, ctx.paths.winner)
        return {}

    def report(self, ctx: Any) -> dict[str, Any]:
        ctx.paths.report.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "report.html"):
            (ctx.paths.report / name).write_text("report")
        ctx.paths.summary.write_text(json.dumps({"made": self._made("report")}))
        return {}


def _copy(src: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeStages:
    f = FakeStages()
    for stage in STAGES:
        monkeypatch.setattr(st, f"stage_{stage}", getattr(f, stage))
    return f


def _cfg(**override: Any) -> RunConfig:
    return RunConfig.model_validate({**CFG, **override})


def _run(out: Path, fake: FakeStages, cfg: RunConfig | None = None, **kw: Any) -> list[str]:
    fake.calls.clear()
    run_pipeline(cfg or _cfg(), out, **kw)
    return list(fake.calls)


def _made(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_forced_earlier_stage_with_until_makes_the_next_run_redo_the_rest(tmp_path: Path, fake: FakeStages) -> None:
    out = tmp_path / "run"
    assert _run(out, fake) == list(STAGES)
    assert _run(out, fake) == []  # all done: every stage skipped
    # the steps: redo the supernet only, under a hash-neutral setting
    threads2 = _cfg(train={**CFG["train"], "threads": 2})
    assert _run(out, fake, threads2, force=["supernet"], until="supernet") == ["supernet"]
    supernet = _made(out / "supernet" / "run.json")["made"]
    assert _run(out, fake) == ["search", "retrain", "evaluate", "report"]
    # the search was done afresh on the new supernet, not resumed from the old study
    assert _made(out / "search" / "study.journal")["on"] == [supernet]
    assert _made(out / "winner" / "model.json")["on"] == _made(out / "search" / "best.json")["made"]
    assert _run(out, fake) == []


def test_stage_rerun_for_missing_outputs_redoes_the_later_ones(tmp_path: Path, fake: FakeStages) -> None:
    out = tmp_path / "run"
    _run(out, fake)
    (out / "supernet" / "run.json").unlink()
    assert _run(out, fake) == list(STAGES)
    assert _made(out / "search" / "study.journal")["on"] == [_made(out / "supernet" / "run.json")["made"]]
    # a later stage with missing outputs reruns with the ones after it, the earlier ones stay
    (out / "winner" / "model.json").unlink()
    assert _run(out, fake) == ["retrain", "evaluate", "report"]


def test_starting_a_stage_forgets_the_later_ones_at_once(tmp_path: Path, fake: FakeStages,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    _run(out, fake)

    def crash(ctx: Any) -> dict[str, Any]:
        state = json.loads(RunPaths(out).state.read_text())
        assert set(state["stages"]) == {"supernet", "search"}  # already written when it starts
        assert not (out / "winner").exists() and not (out / "summary.json").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(st, "stage_retrain", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(out, fake, force=["retrain"])
    monkeypatch.setattr(st, "stage_retrain", fake.retrain)
    assert _run(out, fake) == ["retrain", "evaluate", "report"]


def test_records_chain_run_numbers(tmp_path: Path, fake: FakeStages) -> None:
    out = tmp_path / "run"
    _run(out, fake)
    recs = json.loads(RunPaths(out).state.read_text())["stages"]
    assert [recs[s]["after"] for s in STAGES] == [None] + [recs[s]["run"] for s in STAGES[:-1]]
    assert len({recs[s]["run"] for s in STAGES}) == len(STAGES)


def test_state_of_an_earlier_version_is_reused_unless_stale(tmp_path: Path, fake: FakeStages) -> None:
    out = tmp_path / "run"
    _run(out, fake)
    paths = RunPaths(out)
    state = json.loads(paths.state.read_text())
    for rec in state["stages"].values():  # as written before run numbers existed
        rec.pop("run"), rec.pop("after")
        rec["finished_at"] = "2024-01-01T00:00:00"
    state.pop("runs", None)
    paths.state.write_text(json.dumps(state))
    assert _run(out, fake) == []
    # the state the bug left: the supernet redone after the search it is recorded with
    state["stages"]["supernet"]["finished_at"] = "2024-01-02T00:00:00"
    paths.state.write_text(json.dumps(state))
    assert _run(out, fake) == ["search", "retrain", "evaluate", "report"]
