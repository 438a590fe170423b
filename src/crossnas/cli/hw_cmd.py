"""``crossnas hw``: hardware cost of a network (placeholder until the cost model lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("hw")
    def hw() -> None:
        """Latency, energy, area and power of a network on a PIM accelerator."""
        raise typer.Exit(1)
