"""Atomic writes: results and checkpoints are never left half-written.

Each writer writes to a temporary file in the destination's folder, flushes and
fsyncs it, then renames it over the destination (``os.replace`` is atomic on POSIX).
An ``OSError`` (disk full, permission) becomes a one-line :class:`CrossnasError` and
the earlier file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from crossnas.errors import CrossnasError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Opens a temporary file that replaces ``path`` only if the block succeeds.

    Args:
        path: destination file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise CrossnasError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    ok = False
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        ok = True
    except OSError as exc:
        raise CrossnasError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=False, default=_json_default)
    with atomic_open(path, "w") as fh:
        fh.write(text + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[Any]], object], binary: bool = True) -> None:
    """Calls ``writer(fh)`` on a temporary file that then replaces ``path``."""
    with atomic_open(path, "wb" if binary else "w") as fh:
        writer(fh)


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    write_with(path, lambda fh: torch.save(obj, fh))


def load_torch(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """Loads a checkpoint with ``weights_only=True``; corrupt files raise CrossnasError."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CrossnasError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CrossnasError(
            f"checkpoint {p} is corrupt or truncated ({type(exc).__name__}); delete it or rerun with --force"
        ) from exc


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Reads JSON; a missing or malformed file raises a one-line CrossnasError."""
    p = Path(path)
    if not p.is_file():
        raise CrossnasError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrossnasError(f"{what} {p} is not valid JSON: {exc}") from exc


def stable_hash(obj: Any) -> str:
    """A short hex digest of a JSON-able object (key order independent)."""
    text = json.dumps(obj, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
