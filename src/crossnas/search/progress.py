"""A rich progress bar for a running search (used by ``crossnas search`` and ``crossnas run``)."""

from __future__ import annotations

from typing import Any


def progress_display(enabled: bool) -> tuple[Any, Any]:
    """A rich progress bar on stderr and its update callback (both ``None`` when disabled)."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(
        TextColumn("[bold]search[/] gen {task.fields[gen]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = prog.add_task("search", total=None, gen="-", best="")
    state: dict[str, str] = {"best": ""}

    def update(info: Any) -> None:
        if info.best_fitness is not None:
            state["best"] = f"best fitness {info.best_fitness:.3f}"
        elif info.front_size is not None:
            state["best"] = f"front {info.front_size}"
        if info.pim_scored:
            state["pim"] = f", {info.pim_scored} on simulated chips"
        prog.update(task, completed=info.evaluated, total=max(info.expected, info.evaluated),
                    gen=f"{info.generation + 1}/{info.generations}", best=state["best"] + state.get("pim", ""))

    return prog, update
