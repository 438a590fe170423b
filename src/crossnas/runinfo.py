"""Facts read back from a run directory's files, shared by the pipeline and the report.

A low module (it imports only :mod:`crossnas.utils`), so that :mod:`crossnas.report` can
read a run without importing :mod:`crossnas.pipeline`, which imports the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossnas.utils.io import read_json


def supernet_train_seconds(sdir: Path) -> float:
    """Training time summed over epochs (survives resumes), from ``metrics.json``."""
    p = Path(sdir) / "metrics.json"
    if not p.exists():
        return 0.0
    hist = read_json(p, "supernet metrics")
    rows: Any = hist.get("history", hist) if isinstance(hist, dict) else hist
    epochs: list[dict[str, Any]] = [r for r in rows if isinstance(r, dict)]
    return float(sum(float(r.get("epoch_time_s", r.get("seconds", 0.0))) for r in epochs))


def search_seconds(search_dir: Path) -> float:
    """Wall-clock time of the search (``timings.total_wall_s`` of ``search.json``)."""
    p = Path(search_dir) / "search.json"
    if not p.exists():
        return 0.0
    timings = read_json(p, "search.json").get("timings", {})
    return float(timings.get("total_wall_s", 0.0))
