"""The end-to-end pipeline, one stage after another, each skipped when already done.

Run directory::

    RUN_DIR/config.yaml        the resolved config of the latest run
    RUN_DIR/pipeline.json      per stage: config hash, finish time, seconds
    RUN_DIR/supernet/          supernet training (run.json, checkpoint.pt, supernet.pt, ...)
    RUN_DIR/search/            study.journal, search.json, pareto.json, best.json, candidates.json
    RUN_DIR/retrain/<label>/   retraining checkpoints of each winner
    RUN_DIR/winners/<label>/   model directories (model.json, weights.pt, evaluation.json)
    RUN_DIR/winner/            the first winner's model directory (``crossnas evaluate``/``export``)
    RUN_DIR/report/            report.md, report.html, PNG plots
    RUN_DIR/summary.json       the final figures (also printed by ``--json``)

Each stage's hash covers the config sections it depends on and the hash of the stage
before it. A stage recorded as done with the current hash is skipped; one recorded with
another hash is an error (the run directory was made by another config) unless forced
with ``--force STAGE``, which redoes that stage and every stage after it. A stage cut
short (crash, Ctrl-C, kill) continues where it stopped: supernet training and retraining
resume from their last epoch checkpoint, the search from its study.

The config hash alone does not say which *result* a stage was built on: a stage rerun by
``--force`` (say with ``--until``), or because its outputs went missing, computes a new
result under the same hash (hash-neutral settings such as ``train.threads`` may change
it, too). So every finished stage also records a run number (``run``, unique within the
run directory) and the run number of the stage before it that it was built on
(``after``); a stage is reused only while that chain holds. Starting a stage drops the
records and outputs of every stage after it (they are stale from then on), before it
runs, so an interrupted rerun cannot leave them behind either. Records written before
run numbers existed are trusted only when finished no earlier than the stage before them.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crossnas.config.hardware import HardwareConfig
from crossnas.config.run import RunConfig
from crossnas.errors import CrossnasError
from crossnas.utils.io import read_json, stable_hash, write_json, write_text

logger = logging.getLogger(__name__)

STAGES = ("supernet", "search", "retrain", "evaluate", "report")
STATE_FORMAT = "crossnas-pipeline/1"
# How and where a stage runs, not what it computes (results agree up to float rounding):
# the stage hashes leave them out, so changing them reuses finished stages.
_NEUTRAL = {k: ("device", "threads", "log_every", "channels_last") for k in ("train", "retrain")}


@dataclass(frozen=True)
class RunPaths:
    """Where each stage keeps its outputs."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def supernet(self) -> Path:
        return self.root / "supernet"

    @property
    def search(self) -> Path:
        return self.root / "search"

    @property
    def retrain(self) -> Path:
        return self.root / "retrain"

    @property
    def winners(self) -> Path:
        return self.root / "winners"

    @property
    def winner(self) -> Path:
        return self.root / "winner"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def stage_outputs(self, stage: str) -> list[Path]:
        return {
            "supernet": [self.supernet],
            "search": [self.search],
            "retrain": [self.retrain, self.winners, self.winner],
            "evaluate": [self.winner],
            "report": [self.report, self.summary],
        }[stage]


def _section(cfg: RunConfig, name: str) -> Any:
    d = cfg.model_dump(mode="json")[name]
    if isinstance(d, dict):
        for k in _NEUTRAL.get(name, ()):
            d.pop(k, None)
    return d


def stage_hashes(cfg: RunConfig) -> dict[str, str]:
    """The config hash of every stage (each chained to the stage before it)."""
    deps = {
        "supernet": ("seed", "data", "space", "train"),
        "search": ("hardware", "search"),
        "retrain": ("retrain",),
        "evaluate": ("evaluate",),
        "report": ("report",),
    }
    out: dict[str, str] = {}
    prev = ""
    for stage in STAGES:
        prev = stable_hash({"prev": prev, **{n: _section(cfg, n) for n in deps[stage]}})
        out[stage] = prev
    return out


def _load_state(paths: RunPaths) -> dict[str, Any]:
    if not paths.state.exists():
        return {"format": STATE_FORMAT, "stages": {}}
    st = read_json(paths.state, "pipeline state")
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT or not isinstance(st.get("stages"), dict):
        raise CrossnasError(f"{paths.state} is not a crossnas pipeline state file; use a new --out")
    return st


def check_run_dir(paths: RunPaths, hashes: dict[str, str], force: Iterable[str]) -> tuple[dict[str, Any], set[str]]:
    """Validates the run directory against the config before anything is written.

    Returns:
        ``(state, redo)``: the pipeline state and the stages to redo from scratch.

    Raises:
        CrossnasError: a stage was made by another config and is not forced.
    """
    force = set(force)
    bad = [s for s in force if s not in STAGES]
    if bad:
        raise CrossnasError(f"--force {bad[0]!r}: allowed stages: {', '.join(STAGES)}")
    if paths.root.exists() and not paths.root.is_dir():
        raise CrossnasError(f"--out {paths.root} exists and is not a directory")
    if paths.root.is_dir() and any(paths.root.iterdir()) and not paths.state.exists():
        raise CrossnasError(
            f"--out {paths.root} is not empty and holds no crossnas run (pipeline.json missing); use a new or empty folder"
        )
    state = _load_state(paths)
    first_forced = min((STAGES.index(s) for s in force), default=len(STAGES))
    redo = set(STAGES[first_forced:])
    for stage in STAGES:
        rec = state["stages"].get(stage)
        if stage in redo or rec is None:
            continue
        if rec.get("hash") != hashes[stage]:
            raise CrossnasError(
                f"{paths.root} was made by another config: stage '{stage}' differs from this config; "
                f"rerun with --force {stage} (redoes it and the stages after it) or use a new --out"
            )
    return state, redo


StageFn = Callable[["PipelineContext"], dict[str, Any]]


@dataclass
class PipelineContext:
    cfg: RunConfig
    paths: RunPaths
    progress: bool
    _data: Any = None

    @property
    def data(self) -> Any:
        if self._data is None:
            from crossnas.data import load_data

            self._data = load_data(self.cfg.data)
        return self._data


def run_pipeline(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    force: Iterable[str] = (),
    progress: bool = False,
    until: str | None = None,
    on_stage: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Runs (or continues) the pipeline and returns the summary.

    Args:
        cfg: the run config.
        out_dir: run directory.
        force: stages to redo (with every later stage).
        progress: draw progress bars.
        until: stop after this stage.
        on_stage: called as ``on_stage(stage, "start"|"skip"|"done")``.

    Raises:
        CrossnasError: a run dir of another config, bad data folder, corrupt files.
    """
    from crossnas.pipeline import stages as st

    paths = RunPaths(Path(out_dir))
    hashes = stage_hashes(cfg)
    state, redo = check_run_dir(paths, hashes, force)
    if until is not None and until not in STAGES:
        raise CrossnasError(f"--until {until!r}: allowed stages: {', '.join(STAGES)}")
    paths.root.mkdir(parents=True, exist_ok=True)
    if not paths.state.exists():  # mark the folder as a run at once: a crash in the first stage stays resumable
        write_json(paths.state, state)
    write_text(paths.config, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    ctx = PipelineContext(cfg, paths, progress)
    funcs: dict[str, StageFn] = {
        "supernet": st.stage_supernet, "search": st.stage_search, "retrain": st.stage_retrain,
        "evaluate": st.stage_evaluate, "report": st.stage_report,
    }
    prev: dict[str, Any] | None = None  # the record of the stage before (as done in this run)
    for i, stage in enumerate(STAGES):
        rec = state["stages"].get(stage)
        if stage in redo:
            for p in paths.stage_outputs(stage):
                _remove(p)
            state["stages"].pop(stage, None)
            redo.discard(stage)
            rec = None
        if rec is not None and rec.get("hash") == hashes[stage] and not _follows(rec, prev):
            # built on an earlier result of the stage before: start afresh (no resume of stale files)
            logger.info("stage %s was built on an earlier %s result; redoing it", stage, STAGES[i - 1])
            for p in paths.stage_outputs(stage):
                _remove(p)
            state["stages"].pop(stage, None)
            rec = None
        if rec is not None and rec.get("hash") == hashes[stage] and _outputs_present(paths, stage):
            if on_stage:
                on_stage(stage, "skip")
        else:
            _drop_from(paths, state, i)
            if on_stage:
                on_stage(stage, "start")
            t0 = time.perf_counter()
            info = funcs[stage](ctx)
            run_no = _next_run(state)
            rec = {**info, "hash": hashes[stage], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "seconds": round(time.perf_counter() - t0, 3), "run": run_no,
                   "after": None if prev is None else prev.get("run")}
            state["stages"][stage] = rec
            state["runs"] = run_no
            write_json(paths.state, state)
            if on_stage:
                on_stage(stage, "done")
        prev = rec
        if stage == until:
            break
    return read_json(paths.summary, "summary") if paths.summary.exists() else {"run_dir": str(paths.root)}


def _follows(rec: dict[str, Any], prev: dict[str, Any] | None) -> bool:
    """Whether ``rec`` was built on the result recorded in ``prev`` (the stage before)."""
    if prev is None:
        return True
    if prev.get("run") is not None:
        return rec.get("after") == prev["run"]
    # ``prev`` predates run numbers: trust ``rec`` only if it finished no earlier
    return rec.get("after") is None and str(rec.get("finished_at", "")) >= str(prev.get("finished_at", ""))


def _next_run(state: dict[str, Any]) -> int:
    runs = [state.get("runs")] + [r.get("run") for r in state["stages"].values() if isinstance(r, dict)]
    return max((int(r) for r in runs if isinstance(r, int)), default=0) + 1


def _drop_from(paths: RunPaths, state: dict[str, Any], i: int) -> None:
    """Forgets every stage after ``STAGES[i]``: their records, then their outputs.

    Called when stage ``i`` starts: whatever it produces is a new result, so the later
    stages must be redone on it. The state is written first, so that a crash in between
    leaves outputs without records (removed when a stage starts again), never records
    of results built on an old input.
    """
    later = STAGES[i + 1:]
    dropped = [s for s in later if state["stages"].pop(s, None) is not None]
    if dropped:
        write_json(paths.state, state)
        logger.info("stage %s runs: forgetting the later stages %s", STAGES[i], ", ".join(dropped))
    for s in later:
        for p in paths.stage_outputs(s):
            _remove(p)


def _outputs_present(paths: RunPaths, stage: str) -> bool:
    check = {
        "supernet": [paths.supernet / "run.json"],
        "search": [paths.search / "best.json", paths.search / "pareto.json", paths.search / "search.json"],
        "retrain": [paths.winner / "model.json"],
        "evaluate": [paths.winner / "evaluation.json"],
        "report": [paths.report / "report.md", paths.report / "report.html", paths.summary],
    }[stage]
    return all(p.exists() for p in check)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def winner_hardware(entry: dict[str, Any]) -> HardwareConfig:
    """The full hardware config of a ``best.json`` winner."""
    return HardwareConfig.model_validate(entry["hardware"])
