"""Trial store robustness: torn / corrupt journal files (issue 11, fault 1) and the
background heartbeat that keeps a long evaluation's lease (issue 11, fault 8)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.search import SearchProblem, SyntheticAccuracy, run_search
from crossnas.search import _journal as journal_mod
from crossnas.search import _workers as workers_mod
from crossnas.search import store as store_mod
from crossnas.search.costs import CostCache
from crossnas.search.store import (
    HB_PREFIX,
    TrialStore,
    WorkerInfo,
    open_storage,
    resolve_storage_url,
)

SMALL = {"accuracy": {"fidelity": "synthetic"}, "claim_batch": 1,
         "evolution": {"population": 6, "top_k": 2, "n_mutations": 3, "n_crossovers": 3, "generations": 2},
         "normalization": {"samples": 40}}


def problem() -> SearchProblem:
    return SearchProblem(SearchConfig.model_validate(SMALL), SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)


def complete_trials(run_dir: Path) -> dict[str, list[float]]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    st = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    ts = optuna.load_study(study_name="crossnas", storage=st).get_trials(deepcopy=False)
    return {t.user_attrs["key"]: t.values for t in ts if t.state.name == "COMPLETE"}


def search_in_subprocess(run_dir: Path) -> None:
    """The search run by another process, which then no longer exists (its claims go stale)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from pathlib import Path; from test_search_store_journal import problem; "
            "from crossnas.search import SyntheticAccuracy, run_search; "
            f"run_search(problem(), SyntheticAccuracy, Path({str(run_dir)!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def records_ok(journal: Path) -> bool:
    data = journal.read_bytes()
    return data.endswith(b"\n") and all(isinstance(json.loads(line), dict) for line in data.splitlines())


def torn_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == journal_mod.__name__ and r.levelno == logging.WARNING and "incomplete" in r.getMessage()]


# ---- fault 1: torn journal tail --------------------------------------------------------------
def test_torn_last_record_is_dropped_and_the_search_continues(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    search_in_subprocess(tmp_path)
    journal = tmp_path / "study.journal"
    full = complete_trials(tmp_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    # power loss while the last result was appended: that record is cut in half, nothing follows
    last = max(i for i, line in enumerate(lines)
               if json.loads(line)["op_code"] == 6 and json.loads(line)["state"] == 1)
    torn = lines[last][: len(lines[last]) // 2]
    journal.write_bytes(b"".join(lines[:last]) + torn)
    kept = complete_trials(tmp_path)  # what Optuna itself still reads
    assert len(kept) == len(full) - 1

    with caplog.at_level(logging.WARNING, logger=journal_mod.__name__):
        res = run_search(problem(), SyntheticAccuracy, tmp_path)
    assert torn_warnings(caplog) == [
        f"journal {journal}: its last record was incomplete (crash, power loss or full disk): dropped its "
        f"{len(torn)} byte(s); the study continues from the record before it"
    ]
    assert res.summary["evaluated_here"] == 1  # only the torn result is redone (its worker is gone)
    assert set(res.results) == set(full)
    after = complete_trials(tmp_path)
    assert all(after[k] == v for k, v in kept.items())  # earlier evaluations kept as they were
    assert after.keys() == full.keys()
    assert records_ok(journal)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=journal_mod.__name__):
        again = run_search(problem(), SyntheticAccuracy, tmp_path)
    assert again.summary["evaluated_here"] == 0 and set(again.results) == set(full)
    assert torn_warnings(caplog) == []
    assert complete_trials(tmp_path) == after


def _small_journal(tmp_path: Path) -> Path:
    p = problem()
    TrialStore(resolve_storage_url(None, tmp_path), "crossnas", p.genomes(), p.fingerprint())
    return tmp_path / "study.journal"


@pytest.mark.parametrize("tail", [
    b'{"op_code":3,"worker_id":"w","study_id":0,"system_attr":{"crossnas.hb.x":1',  # cut mid-record
    b'{"op_code":3,"worker_id":"w","study_id":0,"system_attr":{"crossnas.hb.x":1.0}}',  # no newline
    b"\0" * 300,  # size extended, data never written (power loss)
    b'{"op_code":3,"worker_id":"w","st\n',  # newline-terminated garbage
    b"\n",
])
def test_incomplete_last_line_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture, tail: bytes) -> None:
    journal = _small_journal(tmp_path)
    good = journal.read_bytes()
    journal.write_bytes(good + tail)
    url = resolve_storage_url(None, tmp_path)
    with caplog.at_level(logging.WARNING, logger=journal_mod.__name__):
        open_storage(url)
    assert journal.read_bytes() == good
    assert torn_warnings(caplog) and f"dropped its {len(tail)} byte(s)" in torn_warnings(caplog)[0]
    p = problem()
    TrialStore(url, "crossnas", p.genomes(), p.fingerprint()).heartbeat(force=True)  # appends cleanly
    TrialStore(url, "crossnas", p.genomes(), p.fingerprint())
    assert records_ok(journal)


def test_intact_journal_is_untouched(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = _small_journal(tmp_path)
    good = journal.read_bytes()
    with caplog.at_level(logging.WARNING, logger=journal_mod.__name__):
        open_storage(resolve_storage_url(None, tmp_path))
    assert journal.read_bytes() == good and torn_warnings(caplog) == []


def test_corrupt_middle_line_is_a_one_line_error_and_not_dropped(tmp_path: Path) -> None:
    run_search(problem(), SyntheticAccuracy, tmp_path)
    journal = tmp_path / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + b"\n"
    journal.write_bytes(b"".join(lines))
    with pytest.raises(CrossnasError) as err:
        run_search(problem(), SyntheticAccuracy, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"journal {journal}: line 5 is not a valid record (JSONDecodeError: ")
    assert "\n" not in msg
    assert journal.read_bytes() == b"".join(lines)  # nothing dropped


def test_torn_line_followed_by_appends_names_the_line(tmp_path: Path) -> None:
    """A journal damaged by an earlier version (appends written after a torn record)."""
    journal = _small_journal(tmp_path)
    n = len(journal.read_bytes().splitlines())
    rec = b'{"op_code":3,"worker_id":"w","study_id":0,"system_attr":{"crossnas.hb.x":1.0}}\n'
    journal.write_bytes(journal.read_bytes() + rec[:30] + rec + rec)
    with pytest.raises(CrossnasError, match=rf"^journal {journal}: line {n + 1} is not a valid record"):
        open_storage(resolve_storage_url(None, tmp_path))


def test_storage_failure_during_setup_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.storages import JournalStorage

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(JournalStorage, "set_study_system_attr", full_disk)
    p = problem()
    with pytest.raises(CrossnasError, match=r"^--storage journal:\S+: cannot open study 'crossnas' "
                                            r"\(OSError: \[Errno 28\] No space left on device\)$"):
        TrialStore(resolve_storage_url(None, tmp_path), "crossnas", p.genomes(), p.fingerprint())


# ---- fault 8: heartbeat while one evaluation runs ---------------------------------------------
class FakeClock:
    """``time`` for the store module with a settable wall clock (``time.time``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_heartbeat_thread_keeps_a_long_evaluation_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1_000_000.0)
    monkeypatch.setattr(store_mod, "time", clock)
    lease = 0.4
    p = problem()
    g = p.genomes()
    url = resolve_storage_url(None, tmp_path)
    worker = TrialStore(url, "crossnas", g, p.fingerprint(), lease_s=lease)
    worker.worker = WorkerInfo("remote", "elsewhere", "x", 1, None)  # another host: lease rule applies
    other = TrialStore(url, "crossnas", g, p.fingerprint(), lease_s=lease)
    import numpy as np

    rng = np.random.default_rng(0)
    vec = g.random(rng)
    while not g.is_valid(vec):
        vec = g.random(rng)
    cand = g.candidate(vec)
    hb = HB_PREFIX + worker.worker.id

    started, release, done = threading.Event(), threading.Event(), threading.Event()
    beats: list[float] = []

    def evaluate() -> None:  # one evaluation that blocks until the test releases it
        started.set()
        release.wait()

    def work() -> None:
        worker.claim([cand], CostCache(g).costs([cand]), 0, "synthetic")
        with worker.heartbeat_thread() as hbt:
            beats.append(hbt.interval_s)
            evaluate()
        done.set()

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        assert started.wait(30)
        assert other.get_attr(hb) == clock.now  # written on entry
        # far more than the lease passes while the evaluation runs: the thread keeps refreshing
        for step in range(1, 4):
            clock.now += 10 * lease
            deadline = time.monotonic() + 30
            while other.get_attr(hb) != clock.now and time.monotonic() < deadline:
                threading.Event().wait(0.01)  # waiting for the thread's next write, not for time
            assert other.get_attr(hb) == clock.now, f"no heartbeat after step {step}"
            assert cand.key in other.read().running  # not stale: not failed, not redone
        assert beats == [lease / 4]
    finally:
        release.set()
    assert done.wait(30)
    t.join(30)
    assert not any(th.name.startswith("crossnas-heartbeat-") for th in threading.enumerate())  # stopped
    last = other.get_attr(hb)
    clock.now += 2 * lease
    assert cand.key not in other.read().running  # lease expired once the thread stopped
    assert other.get_attr(hb) == last  # and it wrote nothing after its block ended
    states = [tr.state.name for tr in other.storage.get_all_trials(other.study_id) if tr.user_attrs.get("key") == cand.key]
    assert states == ["FAIL"]


def test_heartbeat_thread_survives_storage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    p = problem()
    store = TrialStore(resolve_storage_url(None, tmp_path), "crossnas", p.genomes(), p.fingerprint(), lease_s=0.2)
    calls: list[int] = []
    recovered = threading.Event()
    real = store._beat

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real()
        recovered.set()

    monkeypatch.setattr(store, "_beat", flaky)
    with caplog.at_level(logging.WARNING, logger=workers_mod.__name__), store.heartbeat_thread() as hbt:
        assert recovered.wait(30)
        assert hbt.alive
    assert not hbt.alive
    assert any("heartbeat failed (OSError" in r.getMessage() for r in caplog.records)
