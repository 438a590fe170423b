"""The list of subcommand modules (each exposes ``register(app)``).

One module per command group, so work on one never touches another:
``hw_cmd`` (hw), ``supernet_cmd`` (supernet train/score), ``evaluate_cmd``
(evaluate), ``search_cmd`` (search, compare), ``pipeline_cmd`` (run, retrain,
report, export), ``data_cmd`` (data fetch).
"""

from __future__ import annotations

from crossnas.cli import data_cmd, evaluate_cmd, hw_cmd, pipeline_cmd, search_cmd, supernet_cmd

MODULES = [hw_cmd, supernet_cmd, evaluate_cmd, search_cmd, pipeline_cmd, data_cmd]
