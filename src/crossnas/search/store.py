"""Persistence of a search in an Optuna study: every evaluated candidate is a trial.

Trial layout (all modes):

- ``values`` = ``[accuracy, latency_ms, energy_mJ, edp_mJms, area_mm2]`` with directions
  ``[max, min, min, min, min]`` (Optuna's own tools show the 5-D front);
- user attrs written when the trial is created (the *claim*): ``key`` (canonical genome),
  ``arch``, ``hw`` (searched hardware genes), ``genome`` (the integer vector; gene names in
  the study system attr ``crossnas.genes``), ``gen`` (generation), ``fidelity``,
  ``cost`` (all hardware figures incl. ``power_W``), ``worker`` (id, host, boot id, pid,
  process start); on completion ``eval`` (``accuracy``, ``eval_s`` wall time, ``cached``).
- a PIM score (``pim_aware`` fidelity) is a trial of its own with the key
  ``<genome key>#pim``, fidelity ``pim``, ``values[0]`` its Monte-Carlo mean and ``eval``
  holding ``pim_accuracy_mean``, ``pim_accuracy_std`` and ``pim_runs``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crossnas.errors import CrossnasError
from crossnas.metrics import SEARCHABLE
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import Evaluation, HardwareCost, PimScore

logger = logging.getLogger(__name__)

VALUE_NAMES = ("accuracy", *SEARCHABLE)
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize", "minimize", "minimize", "minimize")
JOURNAL_NAME = "study.journal"
HB_PREFIX = "crossnas.hb."
PIM_SUFFIX = "#pim"
"""A PIM-score trial carries the key ``<genome key>#pim`` (its own claim, lease and
duplicate rules, like any candidate); ``values[0]`` is the Monte-Carlo mean accuracy."""


def pim_key(key: str) -> str:
    """The trial key of ``key``'s PIM score."""
    return key + PIM_SUFFIX


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

    A journal file whose last record was cut short (crash, power loss, full disk) is
    truncated back to its last complete record first (see :func:`_repair_journal_tail`).

    Raises:
        CrossnasError: the storage cannot be opened (one line, password redacted), or a
            journal record before the last one is corrupt (file and line named).
    """
    import optuna

    try:
        if url.startswith("journal:"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(_journal_backend(JournalFileBackend, str(path)))
        return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
    except CrossnasError:
        raise
    except Exception as exc:  # sqlalchemy/driver/OS errors of many types
        raise _storage_error(url, exc, "cannot open") from exc


def _storage_error(url: str, exc: BaseException, what: str) -> CrossnasError:
    """One-line error for a storage exception; names the corrupt line of a journal file."""
    if url.startswith("journal:") and isinstance(exc, ValueError):
        path = Path(url[len("journal:"):])
        with contextlib.suppress(OSError):
            bad = _first_bad_journal_line(path)
            if bad is not None:
                return CrossnasError(
                    f"journal {path}: line {bad[0]} is not a valid record ({bad[1]}); it is not the last "
                    "record, so it was not dropped: restore the file from a backup or repair that line"
                )
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CrossnasError(f"--storage {redact(url)}: {what} ({type(exc).__name__}: {first})")


def _journal_record_ok(line: bytes) -> bool:
    """Whether ``line`` is one complete journal record: newline-terminated JSON object."""
    import json

    if not line.endswith(b"\n"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False


def _first_bad_journal_line(path: Path) -> tuple[int, str] | None:
    """(1-based line number, reason) of the first line of ``path`` that is not a record."""
    import json

    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return n, "no end of line"
            try:
                obj = json.loads(line)
            except ValueError as exc:
                return n, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if not isinstance(obj, dict):
                return n, f"JSON {type(obj).__name__}, not an object"
    return None


def _last_line_start(f: Any, size: int) -> int:
    """Offset of the first byte of the last line of the open file ``f`` of ``size`` bytes."""
    pos = size - 1  # a final "\n" ends the last line rather than starting a new one
    while pos > 0:
        lo = max(0, pos - (1 << 16))
        f.seek(lo)
        i = f.read(pos - lo).rfind(b"\n")
        if i >= 0:
            return lo + i + 1
        pos = lo
    return 0


def _journal_tail(path: str) -> tuple[int, int] | None:
    """``(size, offset)`` when the journal's last line is not a complete record, else ``None``."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return None
        start = _last_line_start(f, size)
        f.seek(start)
        if _journal_record_ok(f.read(size - start)):
            return None
        return size, start


def _repair_journal_tail(path: str, lock: Any) -> None:
    """Truncates a journal whose last record is incomplete back to the record before it.

    A crash, power loss or full disk in the middle of an append leaves a last line without
    its newline, or one that is not JSON. Optuna skips such a line while it is last, but the
    next append is written after it, which turns it into a corrupt record in the middle of
    the file that makes every later open fail. Only the last line is ever dropped (with a
    warning); a bad line before it is reported by :func:`open_storage`, never dropped.
    The check is lock-free while the file is intact; the truncation is done under the
    journal's lock (re-checked there, so an append in flight is never cut).
    """
    if _journal_tail(path) is None:
        return
    lock.acquire()
    try:
        torn = _journal_tail(path)
        if torn is None:
            return
        size, start = torn
        os.truncate(path, start)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    finally:
        lock.release()
    logger.warning("journal %s: its last record was incomplete (crash, power loss or full disk): "
                   "dropped its %d byte(s); the study continues from the record before it", path, size - start)


FSYNC_INTERVAL_S = 1.0
"""The journal file is fsynced at most this often (every write is flushed at once)."""


def _journal_backend(base: type, path: str) -> Any:
    """Optuna's journal file backend, with fsync at most every :data:`FSYNC_INTERVAL_S`.

    Every append is written and flushed under the journal's lock, so other processes see
    it at once and a killed process (even ``kill -9``) loses nothing it appended: the data
    is in the kernel's page cache. Only a crash of the whole machine can lose the appends
    of the last second (Optuna fsyncs every append: ~1-7 ms each on a busy disk, three
    per candidate).

    An incomplete last record (torn write) is dropped before the backend is returned, so
    before Optuna reads the file (:func:`_repair_journal_tail`).
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

    backend = _Backend(path)
    _repair_journal_tail(path, backend._lock)
    return backend


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
    """Key -> (trial number, trial id, worker id) of the live owner claim (PIM-score
    claims under :func:`pim_key`)."""
    n_complete: int
    n_failed: int
    n_duplicates: int
    pim: dict[str, PimScore] = field(default_factory=dict)
    """Genome key -> its PIM score (``pim_aware`` searches)."""

    def done(self, trial_key: str) -> bool:
        """Whether the work under ``trial_key`` (a genome key or a :func:`pim_key`) is stored."""
        if trial_key.endswith(PIM_SUFFIX):
            return trial_key[: -len(PIM_SUFFIX)] in self.pim
        return trial_key in self.results


class HeartbeatThread:
    """Refreshes a :class:`TrialStore`'s heartbeat from a daemon thread every ``lease_s / 4``.

    Made by :meth:`TrialStore.heartbeat_thread`; a context manager, or :meth:`start` /
    :meth:`stop`. The thread writes through the store's Optuna storage, which is
    thread-safe: ``JournalStorage`` runs every call under its own thread lock and replaces
    (never mutates) the trials and attrs it hands out; ``RDBStorage`` uses a session per
    thread. The thread touches no other state of the store than the time of the last
    heartbeat (one attribute assignment). A failed write is logged and retried at the next
    interval.
    """

    def __init__(self, store: TrialStore) -> None:
        self.store = store
        self.interval_s = max(store.lease_s / 4, 0.01)  # the floor: no busy loop on absurd leases
        self._stop: Any = None
        self._thread: Any = None

    def start(self) -> HeartbeatThread:
        import threading

        if self._thread is not None:
            return self
        self.store.heartbeat(force=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), daemon=True,
                                        name=f"crossnas-heartbeat-{self.store.worker.id}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the thread and waits for it (at most one storage write in flight)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, stop: Any) -> None:
        while not stop.wait(self.interval_s):
            try:
                self.store._beat()
            except Exception as exc:  # noqa: BLE001 - a storage hiccup must not end the heartbeat
                logger.warning("worker %s: heartbeat failed (%s: %s); retrying in %.3g s",
                               self.store.worker.id, type(exc).__name__, exc, self.interval_s)

    def __enter__(self) -> HeartbeatThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
        try:  # any storage failure while setting up (torn or corrupt data, I/O, DB) is one line
            self.study = optuna.create_study(storage=self.storage, study_name=study_name,
                                             directions=list(DIRECTIONS), load_if_exists=True)
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
        except CrossnasError:
            raise
        except Exception as exc:  # optuna/sqlalchemy/OS errors of many types
            raise _storage_error(url, exc, f"cannot open study {study_name!r}") from exc
        self._last_hb = 0.0
        self._mine: set[int] = set()
        self._finished: set[int] = set()
        self._results: dict[str, Evaluation] = {}
        self._pim: dict[str, PimScore] = {}
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

    def heartbeat_thread(self) -> HeartbeatThread:
        """A context manager that keeps this worker's heartbeat fresh while its block runs.

        Use it around the worker loop so that one evaluation longer than ``lease_s`` is not
        taken over by another worker::

            with store.heartbeat_thread():
                ...  # claim, evaluate, complete

        On entry the heartbeat is written at once (in the caller's thread, so a storage
        error surfaces there); then a daemon thread rewrites it every ``lease_s / 4``
        seconds. On exit the thread is stopped and joined (no heartbeat is written after
        the block ends). :meth:`heartbeat` stays usable and is a no-op while the thread
        keeps the heartbeat fresh.
        """
        return HeartbeatThread(self)

    def _beat(self) -> None:
        """Writes the heartbeat now (from the heartbeat thread; storages are thread-safe)."""
        now = time.time()
        self.set_attr(HB_PREFIX + self.worker.id, now)
        self._last_hb = now

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
        results, trial_of, pim = self._results, self._trial_of, self._pim
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
                if key.endswith(PIM_SUFFIX):
                    pim.setdefault(key[: -len(PIM_SUFFIX)], self.pim_score_of(t))
                elif key not in results:
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
            done = key[: -len(PIM_SUFFIX)] in pim if key.endswith(PIM_SUFFIX) else key in results
            if done or key in running:
                if wid == self.worker.id:
                    owner = trial_of.get(key, running.get(key, (-1,))[0])
                    self._fail(t._trial_id, duplicate_of=owner)
                continue
            running[key] = (t.number, t._trial_id, wid)
        self.seconds += time.perf_counter() - t0
        return StudyView(results, trial_of, running, len(results), self._n_failed, self._n_dup, pim)

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

    @staticmethod
    def pim_score_of(t: Any) -> PimScore:
        ev = t.user_attrs.get("eval", {})
        return PimScore(float(t.values[0]), float(ev.get("pim_accuracy_std", 0.0)),
                        tuple(float(r) for r in ev.get("pim_runs", ())), float(ev.get("eval_s", 0.0)),
                        int(ev.get("pim_images", 0)),
                        None if ev.get("pim_subset_quantized") is None else float(ev["pim_subset_quantized"]))

    def costs_of_all(self) -> dict[str, HardwareCost]:
        """Hardware costs of every claimed key (to pre-seed the cost cache on resume)."""
        out = {}
        for t in self.storage.get_all_trials(self.study_id, deepcopy=False):
            if "cost" in t.user_attrs and "key" in t.user_attrs and not t.user_attrs["key"].endswith(PIM_SUFFIX):
                out[t.user_attrs["key"]] = HardwareCost(**{m: float(v) for m, v in t.user_attrs["cost"].items()})
        return out

    # ---- writing -----------------------------------------------------------------------------
    def claim(self, candidates: Sequence[Candidate], costs: Sequence[HardwareCost], gen: int,
              fidelity: str, *, pim: bool = False) -> list[int]:
        """Creates one RUNNING trial per candidate (attrs included); returns the trial ids.

        With ``pim``, the trials are PIM-score claims (key :func:`pim_key`, fidelity ``pim``).
        """
        from optuna.trial import FrozenTrial, TrialState

        t0 = time.perf_counter()
        ids = []
        worker = self.worker.to_json()
        for cand, cost in zip(candidates, costs, strict=True):
            vec = self.genomes.vec_of_key(cand.key)
            template = FrozenTrial(
                number=-1, state=TrialState.RUNNING, value=None,
                datetime_start=dt.datetime.now(), datetime_complete=None, params={}, distributions={},
                user_attrs={"key": pim_key(cand.key) if pim else cand.key, "arch": cand.arch,
                            "hw": cand.hw_genes_dict(), "genome": [int(x) for x in vec], "gen": gen,
                            "fidelity": "pim" if pim else fidelity,
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
            out.append(owner is not None and owner[1] == tid and not view.done(key))
        return out

    def complete(self, trial_id: int, ev: Evaluation, eval_s: float, cached: bool) -> bool:
        """Stores the result; ``False`` if the trial was taken over meanwhile."""
        attrs = {"accuracy": ev.accuracy, "eval_s": eval_s, "cached": cached, **dict(ev.extra)}
        return self._finish(trial_id, attrs, [ev.accuracy, ev.cost.latency_ms, ev.cost.energy_mJ,
                                              ev.cost.edp_mJms, ev.cost.area_mm2])

    def complete_pim(self, trial_id: int, score: PimScore, cost: HardwareCost) -> bool:
        """Stores a PIM score; ``False`` if the trial was taken over meanwhile."""
        attrs = {"accuracy": score.mean, "eval_s": score.eval_s, "cached": False, **score.to_json()}
        return self._finish(trial_id, attrs, [score.mean, cost.latency_ms, cost.energy_mJ, cost.edp_mJms,
                                              cost.area_mm2])

    def _finish(self, trial_id: int, attrs: dict[str, Any], values: list[float]) -> bool:
        """Writes ``eval`` and the values, completing the trial (``False``: it was taken over)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        t0 = time.perf_counter()
        try:
            self.storage.set_trial_user_attr(trial_id, "eval", attrs)
            self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, values)
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
            "pim_scores": sum(t.state == TrialState.COMPLETE and str(t.user_attrs.get("key", "")).endswith(PIM_SUFFIX)
                              for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "duplicates": sum(t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
        }
