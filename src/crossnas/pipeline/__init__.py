"""``crossnas run``: supernet -> search -> retrain -> evaluate -> report, resumable by stage."""

from __future__ import annotations

from crossnas.pipeline.run import STAGES, RunPaths, run_pipeline, stage_hashes

__all__ = ["STAGES", "RunPaths", "run_pipeline", "stage_hashes"]
