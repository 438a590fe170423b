"""Persistence of a search in an Optuna study: every evaluated candidate is a trial.

Trial layout (all modes):

- ``values`` = ``[accuracy, latency_ms, energy_mJ, edp_mJms, area_mm2]`` with directions
  ``[max, min, min, min, min]`` (Optuna's own tools show the 5-D front);
- user attrs written when the trial is created (the *claim*): ``key`` (canonical genome),
  ``arch``, ``hw`` (searched hardware genes), ``genome`` (the integer vector; gene names in
  the study system attr ``crossnas.genes``), ``gen`` (generation), ``fidelity``,
  ``cost`` (all hardware figures incl. ``power_W``), ``worker`` (id, host, boot id, pid,
  process start); on completion ``eval`` (``accuracy``, ``eval_s`` wall time, ``cached``).

The genome is kept in user attrs rather than Optuna ``params``: 35 categorical
distributions per trial cost ~4 ms to encode and replay in the journal, more than
everything else a trial costs.

Claims are trials created directly in state RUNNING with their attributes in one storage
write, so other workers see the key the moment the trial exists. Rules, checked by every
worker whenever it reads the study:

- **Duplicates.** If several live trials carry the same key, the one with the smallest
  trial number owns it; the others are set FAIL (attr ``duplicate_of``) before any
  evaluation. Trial creation is linearizable in the journal file (one lock) so two workers
  never both evaluate; with an RDB two claim transactions that overlap in time can both
  miss each other, and both evaluate (the documented race window: the duration of one
  trial insert, milliseconds). The first COMPLETE trial of a key is its result.
- **Stale trials.** A RUNNING trial of another worker is stale, set FAIL and redone when
  (a) its worker ran on this host (same hostname and boot id) and that process (pid and
  start time) no longer exists, or (b) its worker's heartbeat (study system attr
  ``crossnas.hb.<worker id>``, refreshed at least every ``lease_s / 4`` while working) or,
  lacking one, the trial's start is older than ``lease_s``. A worker whose trial was taken
  over discards its result (logged).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import Evaluation, HardwareCost

logger = logging.getLogger(__name__)

VALUE_NAMES = ("accuracy", "latency_ms", "energy_mJ", "edp_mJms", "area_mm2")
DIRECTIONS = ("maximize", "minimize", "minimize", "minimize", "minimize")
JOURNAL_NAME = "study.journal"
HB_PREFIX = "crossnas.hb."


def redact(url: str) -> str:
    """The storage URL with any password replaced by ``***``."""
    if "://" in url and "@" in url:
        scheme, _, rest = url.partition("://")
        cred, _, host = rest.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url


def resolve_storage_url(storage: str | None, run_dir: Path) -> str:
    """The storage to use: ``--storage`` as given, or the journal file in the run dir.

    A value without ``://`` is a journal file path (``journal:PATH`` also accepted).
    """
    if storage is None or storage == "":
        return f"journal:{(Path(run_dir) / JOURNAL_NAME).resolve()}"
    if storage.startswith("journal:"):
        return storage
    if "://" not in storage:
        return f"journal:{Path(storage).resolve()}"
    return storage


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (``journal:PATH`` or any SQLAlchemy URL).

    Raises:
        CrossnasError: the storage cannot be opened (one line, password redacted).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if url.startswith("journal:"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(_journal_backend(JournalFileBackend, str(path)))
        return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # sqlalchemy/driver/OS errors of many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CrossnasError(f"--storage {redact(url)}: cannot open ({type(exc).__name__}: {first})") from exc


FSYNC_INTERVAL_S = 1.0
"""The journal file is fsynced at most this often (every write is flushed at once)."""


def _journal_backend(base: type, path: str) -> Any:
    """Optuna's journal file backend, with fsync at most every :data:`FSYNC_INTERVAL_S`.

    Every append is written and flushed under the journal's lock, so other processes see
    it at once and a killed process (even ``kill -9``) loses nothing it appended: the data
    is in the kernel's page cache. Only a crash of the whole machine can lose the appends
    of the last second (Optuna fsyncs every append: ~1-7 ms each on a busy disk, three
    per candidate).
    """

    class _Backend(base):  # type: ignore[misc,valid-type]
        _last_sync = 0.0

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            import json

            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self._lock.acquire()
            try:
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    now = time.monotonic()
                    if now - self._last_sync > FSYNC_INTERVAL_S:
                        os.fsync(f.fileno())
                        self._last_sync = now
            finally:
                self._lock.release()

    return _Backend(path)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the psycopg2 driver when psycopg (3), SQLAlchemy 2.1's default, is absent."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and sep:
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def _proc_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), to tell reused pids apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` with start time ``start`` still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    now = _proc_start(pid)
    if now is None:
        return Path("/proc").is_dir() is False
    return now == start


@dataclass(frozen=True)
class WorkerInfo:
    """Identity of one worker process."""

    id: str
    host: str
    boot: str
    pid: int
    pstart: str | None

    @classmethod
    def current(cls) -> WorkerInfo:
        pid = os.getpid()
        host = socket.gethostname()
        return cls(f"{host}-{pid}-{uuid.uuid4().hex[:8]}", host, _boot_id(), pid, _proc_start(pid))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "boot": self.boot, "pid": self.pid, "pstart": self.pstart}


@dataclass
class StudyView:
    """What a worker knows after reading the study."""

    results: dict[str, Evaluation]
    trial_of: dict[str, int]
    """Key -> number of the trial holding its result."""
    running: dict[str, tuple[int, int, str]]
    """Key -> (trial number, trial id, worker id) of the live owner claim."""
    n_complete: int
    n_failed: int
    n_duplicates: int


class TrialStore:
    """One search's trials in an Optuna study (journal file, SQLite, PostgreSQL...).

    Args:
        url: resolved storage URL (:func:`resolve_storage_url`).
        study_name: the study.
        genomes: genome space (param names and choices).
        fingerprint: identifies the search problem; a stored study with another one is
            refused (a different config must not continue someone else's search).
        lease_s: stale-trial lease (see module docstring).
    """

    def __init__(self, url: str, study_name: str, genomes: GenomeSpace, fingerprint: str, *,
                 lease_s: float = 300.0) -> None:
        import optuna

        self.url = url
        self.storage = open_storage(url)
        self.genomes = genomes
        self.lease_s = float(lease_s)
        self.worker = WorkerInfo.current()
        self.seconds = 0.0
        try:
            self.study = optuna.create_study(storage=self.storage, study_name=study_name,
                                             directions=list(DIRECTIONS), load_if_exists=True)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CrossnasError(f"--storage {redact(url)}: cannot open study {study_name!r} ({first})") from exc
        if [d.name.lower() for d in self.study.directions] != list(DIRECTIONS):
            raise CrossnasError(f"study {study_name!r} in {redact(url)} is not a crossnas search study")
        self.study_id = self.study._study_id
        attrs = self.storage.get_study_user_attrs(self.study_id)
        stored = attrs.get("crossnas.fingerprint")
        if stored is None:
            self.storage.set_study_user_attr(self.study_id, "crossnas.fingerprint", fingerprint)
        elif stored != fingerprint:
            raise CrossnasError(
                f"study {study_name!r} in {redact(url)} holds a search with a different config/supernet "
                f"(fingerprint {stored} != {fingerprint}); use another --out, --storage or search.study_name"
            )
        self.set_attr("crossnas.genes", genomes.gene_names())
        self._last_hb = 0.0
        self._mine: set[int] = set()
        self._finished: set[int] = set()
        self._results: dict[str, Evaluation] = {}
        self._trial_of: dict[str, int] = {}
        self._n_failed = 0
        self._n_dup = 0

    # ---- study attrs ---------------------------------------------------------------------
    def get_attr(self, name: str) -> Any:
        return self.storage.get_study_system_attrs(self.study_id).get(name)

    def set_attr(self, name: str, value: Any) -> None:
        self.storage.set_study_system_attr(self.study_id, name, value)

    def heartbeat(self, force: bool = False) -> None:
        """Refreshes this worker's heartbeat at most every ``lease_s / 4`` seconds."""
        now = time.time()
        if force or now - self._last_hb > self.lease_s / 4:
            t0 = time.perf_counter()
            self.set_attr(HB_PREFIX + self.worker.id, now)
            self._last_hb = now
            self.seconds += time.perf_counter() - t0

    def live_workers(self) -> list[str]:
        """Ids of workers whose heartbeat is within the lease (this one included)."""
        now = time.time()
        attrs = self.storage.get_study_system_attrs(self.study_id)
        ids = [k[len(HB_PREFIX):] for k, v in attrs.items() if k.startswith(HB_PREFIX) and now - float(v) < self.lease_s]
        return sorted(set(ids) | {self.worker.id})

    # ---- reading ---------------------------------------------------------------------------
    def read(self) -> StudyView:
        """Reads the trials; fails stale and duplicate claims of others (see module docstring).

        Finished trials never change, so they are taken in once and skipped afterwards:
        a read costs the storage's fetch plus O(new or running trials).
        """
        from optuna.trial import TrialState

        t0 = time.perf_counter()
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        sys_attrs: dict[str, Any] | None = None
        results, trial_of = self._results, self._trial_of
        running: dict[str, tuple[int, int, str]] = {}
        now = time.time()
        for t in trials:  # in trial-number order
            if t._trial_id in self._finished:
                continue
            key = t.user_attrs.get("key")
            if key is None:
                self._finished.add(t._trial_id)
                continue
            if t.state == TrialState.COMPLETE:
                self._finished.add(t._trial_id)
                if key not in results:
                    results[key] = self._evaluation(t)
                    trial_of[key] = t.number
                continue
            if t.state.is_finished():
                self._finished.add(t._trial_id)
                self._n_failed += 1
                self._n_dup += int("duplicate_of" in t.user_attrs)
                continue
            if t.state != TrialState.RUNNING:
                continue
            worker = t.user_attrs.get("worker", {})
            wid = str(worker.get("id", ""))
            if wid != self.worker.id:
                if sys_attrs is None:
                    sys_attrs = self.storage.get_study_system_attrs(self.study_id)
                if self._stale(worker, t, sys_attrs, now):
                    logger.warning("trial %d of worker %s is stale (process gone or lease expired): redone",
                                   t.number, wid)
                    self._fail(t._trial_id)
                    continue
            if key in results or key in running:
                if wid == self.worker.id:
                    owner = trial_of.get(key, running.get(key, (-1,))[0])
                    self._fail(t._trial_id, duplicate_of=owner)
                continue
            running[key] = (t.number, t._trial_id, wid)
        self.seconds += time.perf_counter() - t0
        return StudyView(results, trial_of, running, len(results), self._n_failed, self._n_dup)

    def _stale(self, worker: Mapping[str, Any], t: Any, sys_attrs: Mapping[str, Any], now: float) -> bool:
        if worker.get("host") == self.worker.host and worker.get("boot") == self.worker.boot and worker.get("pid"):
            return not process_alive(int(worker["pid"]), worker.get("pstart"))
        last = sys_attrs.get(HB_PREFIX + str(worker.get("id")))
        if last is None:
            start = t.datetime_start
            last = start.timestamp() if start is not None else now
        return now - float(last) > self.lease_s

    def _fail(self, trial_id: int, duplicate_of: int | None = None) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        with contextlib.suppress(UpdateFinishedTrialError, RuntimeError):
            if duplicate_of is not None:
                self.storage.set_trial_user_attr(trial_id, "duplicate_of", duplicate_of)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        self._mine.discard(trial_id)

    def _evaluation(self, t: Any) -> Evaluation:
        cost = HardwareCost(**{m: float(v) for m, v in t.user_attrs["cost"].items()})
        extra = dict(t.user_attrs.get("eval", {}))
        return Evaluation(str(t.user_attrs["key"]), float(t.values[0]), cost,
                          str(t.user_attrs.get("fidelity", "")), extra)

    def costs_of_all(self) -> dict[str, HardwareCost]:
        """Hardware costs of every claimed key (to pre-seed the cost cache on resume)."""
        out = {}
        for t in self.storage.get_all_trials(self.study_id, deepcopy=False):
            if "cost" in t.user_attrs and "key" in t.user_attrs:
                out[t.user_attrs["key"]] = HardwareCost(**{m: float(v) for m, v in t.user_attrs["cost"].items()})
        return out

    # ---- writing -----------------------------------------------------------------------------
    def claim(self, candidates: Sequence[Candidate], costs: Sequence[HardwareCost], gen: int,
              fidelity: str) -> list[int]:
        """Creates one RUNNING trial per candidate (attrs included); returns the trial ids."""
        from optuna.trial import FrozenTrial, TrialState

        t0 = time.perf_counter()
        ids = []
        worker = self.worker.to_json()
        for cand, cost in zip(candidates, costs, strict=True):
            vec = self.genomes.vec_of_key(cand.key)
            template = FrozenTrial(
                number=-1, state=TrialState.RUNNING, value=None,
                datetime_start=dt.datetime.now(), datetime_complete=None, params={}, distributions={},
                user_attrs={"key": cand.key, "arch": cand.arch, "hw": cand.hw_genes_dict(),
                            "genome": [int(x) for x in vec], "gen": gen, "fidelity": fidelity,
                            "cost": cost.as_dict(), "worker": worker},
                system_attrs={}, intermediate_values={}, trial_id=-1,
            )
            tid = self.storage.create_new_trial(self.study_id, template_trial=template)
            ids.append(tid)
            self._mine.add(tid)
        self.seconds += time.perf_counter() - t0
        return ids

    def owned(self, trial_ids: Sequence[int], keys: Sequence[str], view: StudyView) -> list[bool]:
        """Whether each of our claims owns its key after re-reading (else it was failed)."""
        out = []
        for tid, key in zip(trial_ids, keys, strict=True):
            owner = view.running.get(key)
            out.append(owner is not None and owner[1] == tid and key not in view.results)
        return out

    def complete(self, trial_id: int, ev: Evaluation, eval_s: float, cached: bool) -> bool:
        """Stores the result; ``False`` if the trial was taken over meanwhile."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        t0 = time.perf_counter()
        try:
            self.storage.set_trial_user_attr(
                trial_id, "eval", {"accuracy": ev.accuracy, "eval_s": eval_s, "cached": cached, **dict(ev.extra)}
            )
            self.storage.set_trial_state_values(
                trial_id, TrialState.COMPLETE,
                [ev.accuracy, ev.cost.latency_ms, ev.cost.energy_mJ, ev.cost.edp_mJms, ev.cost.area_mm2],
            )
        except UpdateFinishedTrialError:
            logger.warning("trial %d was taken over by another worker; its result is discarded", trial_id)
            return False
        finally:
            self._mine.discard(trial_id)
            self.seconds += time.perf_counter() - t0
        return True

    def release_mine(self) -> None:
        """Fails this worker's open claims (on an error or interrupt) so others redo them at once."""
        for tid in list(self._mine):
            self._fail(tid)

    def trials_summary(self) -> dict[str, int]:
        from optuna.trial import TrialState

        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        return {
            "trials": len(trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "duplicates": sum(t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
        }
