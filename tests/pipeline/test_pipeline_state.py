"""Stage hashes and run-directory checks of ``crossnas run`` (no training involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossnas.config.run import RunConfig, load_run_config
from crossnas.errors import CrossnasError
from crossnas.pipeline.run import STAGES, RunPaths, check_run_dir, stage_hashes
from crossnas.utils.io import write_json


def _cfg(**sections: dict) -> RunConfig:
    return RunConfig.model_validate(sections)


def test_a_section_change_changes_its_stage_and_the_later_ones_only() -> None:
    base = stage_hashes(_cfg())
    changed = stage_hashes(_cfg(search={"seed": 5}))
    assert changed["supernet"] == base["supernet"]
    for stage in STAGES[1:]:
        assert changed[stage] != base[stage]
    retrain = stage_hashes(_cfg(retrain={"epochs": 3}))
    assert retrain["search"] == base["search"] and retrain["retrain"] != base["retrain"]


def test_where_it_runs_does_not_change_hashes() -> None:
    assert stage_hashes(_cfg(train={"device": "cpu", "threads": 1})) == stage_hashes(_cfg())
    assert stage_hashes(_cfg(train={"channels_last": False}, retrain={"channels_last": False})) == stage_hashes(_cfg())
    assert stage_hashes(_cfg(train={"lr": 0.01}))["supernet"] != stage_hashes(_cfg())["supernet"]


def _record(paths: RunPaths, hashes: dict[str, str], upto: str) -> None:
    stages = {s: {"hash": hashes[s]} for s in STAGES[: STAGES.index(upto) + 1]}
    write_json(paths.state, {"format": "crossnas-pipeline/1", "stages": stages})


def test_run_dir_of_another_config_is_refused(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    _record(paths, stage_hashes(_cfg()), "search")
    with pytest.raises(CrossnasError, match="made by another config: stage 'search'"):
        check_run_dir(paths, stage_hashes(_cfg(search={"seed": 9})), force=())
    # forcing the differing stage is allowed, and marks it and the later ones for redo
    _, redo = check_run_dir(paths, stage_hashes(_cfg(search={"seed": 9})), force=["search"])
    assert redo == set(STAGES[1:])


def test_same_config_redoes_nothing(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    _record(paths, stage_hashes(_cfg()), "report")
    _, redo = check_run_dir(paths, stage_hashes(_cfg()), force=())
    assert redo == set()


def test_bad_force_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(CrossnasError, match="allowed stages"):
        check_run_dir(RunPaths(tmp_path / "x"), stage_hashes(_cfg()), force=["training"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(CrossnasError, match="holds no crossnas run"):
        check_run_dir(RunPaths(tmp_path / "other"), stage_hashes(_cfg()), force=())
    bad = RunPaths(tmp_path / "bad")
    bad.root.mkdir()
    bad.state.write_text("{ not json")
    with pytest.raises(CrossnasError, match="not valid JSON"):
        check_run_dir(bad, stage_hashes(_cfg()), force=())


@pytest.mark.parametrize("name", ["digits", "cifar10_paper", "cifar100", "digits_pareto", "digits_memory", "digits_epim"])
def test_shipped_configs_validate(name: str, repo_root: Path) -> None:
    path = repo_root / "configs" / f"{name}.yaml"
    cfg = load_run_config(path)
    assert cfg.search.w_acc
    if name.startswith("cifar"):
        assert cfg.data.dataset.startswith("cifar") and cfg.train.epochs >= 600


def test_bad_run_config_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("search:\n  mode: greedy\n")
    with pytest.raises(CrossnasError) as info:
        load_run_config(p)
    assert "search.mode" in str(info.value) and "\n" not in str(info.value)


def test_crash_in_the_first_stage_leaves_a_resumable_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed while its first stage trains (no stage finished yet) is still a crossnas run
    folder: the rerun continues it instead of refusing the folder as foreign."""
    from crossnas.pipeline import run as R
    from crossnas.pipeline import stages as S

    def crash(ctx: object) -> dict:
        (tmp_path / "run" / "supernet").mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / "supernet" / "checkpoint.pt").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "stage_supernet", crash)
    with pytest.raises(KeyboardInterrupt):
        R.run_pipeline(_cfg(), tmp_path / "run")
    state, redo = check_run_dir(RunPaths(tmp_path / "run"), stage_hashes(_cfg()), force=())
    assert state["stages"] == {} and redo == set()
