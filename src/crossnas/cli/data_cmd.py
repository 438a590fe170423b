"""``crossnas data fetch``: download a dataset, check its published MD5, unpack it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer


def default_partial_dir() -> Path:
    """Where downloads wait until verified: ``$XDG_CACHE_HOME/crossnas/partial`` (else ``~/.cache/...``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "crossnas" / "partial"


def _progress_bar(enabled: bool) -> tuple[Any, Any]:
    """A rich download bar on stderr and its callback (both ``None`` when disabled)."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    prog = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True))
    tasks: dict[str, Any] = {}

    def update(name: str, done: int, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = prog.add_task(name, total=total)
        prog.update(tasks[name], completed=done, total=total)

    return prog, update


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Get the datasets crossnas reads.", no_args_is_help=True)
    app.add_typer(sub, name="data")

    @sub.command("fetch")
    def fetch(
        dataset: str = typer.Argument(..., help="cifar10, cifar100, mnist or fashion-mnist."),
        root: Path | None = typer.Option(
            None, "--root", help="Destination folder, i.e. data.root (default: data for CIFAR, data/mnist, "
                                 "data/fashion-mnist)."),
        mirror: str | None = typer.Option(
            None, "--mirror", help="Base URL, or local folder, holding the files under their official names "
                                   "(e.g. cifar-10-python.tar.gz) instead of the official servers."),
        partial_dir: Path | None = typer.Option(
            None, "--partial-dir", help="Where downloads wait until their checksum is verified, and where an "
                                        "interrupted one resumes (default: ~/.cache/crossnas/partial)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Download DATASET's official files, verify their published MD5 and unpack them into ROOT.

        Nothing reaches ROOT before every file is verified; an interrupted download resumes on the next call (HTTP Range); a dataset already in ROOT is left as it is.
        """
        from crossnas.data.fetch import fetch_dataset, source_for

        src = source_for(dataset)
        dest = root if root is not None else Path(src.default_root)
        prog, update = _progress_bar(not no_progress and sys.stderr.isatty())
        if prog is not None:
            prog.start()
        try:
            res = fetch_dataset(src.name, dest, partial_dir=partial_dir or default_partial_dir(), mirror=mirror,
                                progress=update)
        finally:
            if prog is not None:
                prog.stop()
        if res.already_there:
            typer.echo(f"{src.name}: already in {res.root} (files not re-checked; delete them to fetch again); "
                       f"use data.root: {res.root}")
            return
        note = f"; {src.note}" if src.note else ""
        typer.echo(f"{src.name}: {len(res.files)} file(s) verified (MD5) and unpacked into {res.root}{note}; "
                   f"use data.root: {res.root}")
