"""The list of subcommand modules (each exposes ``register(app)``)."""

from __future__ import annotations

from crossnas.cli import hw_cmd

MODULES = [hw_cmd]
