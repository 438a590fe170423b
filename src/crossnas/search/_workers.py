"""Who a search worker is (host, boot, pid, process start), whether it still runs, and
its background heartbeat. Used by :class:`crossnas.search.store.TrialStore`."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossnas.search.store import TrialStore

logger = logging.getLogger(__name__)


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
