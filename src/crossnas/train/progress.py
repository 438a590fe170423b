"""A rich progress bar with loss/accuracy and ETA (or nothing, when disabled)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """One bar over all remaining steps of a run; ETA is for the whole run.

    Args:
        total_steps: steps of the whole run.
        done_steps: steps already done (resume).
        enabled: draw nothing when ``False``.
        title: bar description.
    """

    def __init__(self, total_steps: int, done_steps: int, *, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                TextColumn("ep {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:6.1%}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(
                title, total=total_steps, completed=done_steps, epoch="-", loss=float("nan"), acc=0.0
            )

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, advance: int, *, epoch: str, loss: float, acc: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=advance, epoch=epoch, loss=loss, acc=acc)
