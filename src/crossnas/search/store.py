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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crossnas.errors import CrossnasError
from crossnas.metrics import SEARCHABLE

# storage I/O and worker identity live apart; their public names stay importable from here
from crossnas.search._journal import JOURNAL_NAME as JOURNAL_NAME
from crossnas.search._journal import _storage_error
from crossnas.search._journal import open_storage as open_storage
from crossnas.search._journal import redact as redact
from crossnas.search._journal import resolve_storage_url as resolve_storage_url
from crossnas.search._workers import HeartbeatThread as HeartbeatThread
from crossnas.search._workers import WorkerInfo as WorkerInfo
from crossnas.search._workers import process_alive as process_alive
from crossnas.search.genome import Candidate, GenomeSpace
from crossnas.search.objectives import Evaluation, HardwareCost, PimScore

logger = logging.getLogger(__name__)

VALUE_NAMES = ("accuracy", *SEARCHABLE)
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize", "minimize", "minimize", "minimize")
HB_PREFIX = "crossnas.hb."
PIM_SUFFIX = "#pim"
"""A PIM-score trial carries the key ``<genome key>#pim`` (its own claim, lease and
duplicate rules, like any candidate); ``values[0]`` is the Monte-Carlo mean accuracy."""


def pim_key(key: str) -> str:
    """The trial key of ``key``'s PIM score."""
    return key + PIM_SUFFIX


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
