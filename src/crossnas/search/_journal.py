"""Opening a search's storage: Optuna journal files (with torn-tail repair), SQLite,
PostgreSQL; URLs and their redaction. No trial logic here (see :mod:`crossnas.search.store`)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError

logger = logging.getLogger(__name__)

JOURNAL_NAME = "study.journal"


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
