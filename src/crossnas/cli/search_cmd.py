# ruff: noqa: B008  (typer options are declared as argument defaults)
"""``crossnas search`` (joint cross-layer search) and ``crossnas compare`` (baselines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from crossnas.errors import CrossnasError


def search(
    config: Path = typer.Option(..., "--config", "-c", help="YAML/JSON with search: and hardware: sections (the full pipeline config works)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: the trained supernet is read from it, results are written to it."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (postgresql://..., sqlite:///...) or journal file; default RUN_DIR/study.journal."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes on this machine."),
    mode: str | None = typer.Option(None, "--mode", help="paper | pareto (overrides search.mode)."),
    supernet: Path | None = typer.Option(None, "--supernet", help="Supernet run directory, if not RUN_DIR."),
    device: str = typer.Option("cpu", "--device", help="Torch device for accuracy scoring."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a config value: search.evolution.generations=5 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary JSON on stdout."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Joint search over network, per-layer bits and PIM hardware (resumable: rerun to continue)."""
    from crossnas.config.loading import parse_set_options
    from crossnas.search.loading import load_search
    from crossnas.search.runner import run_search

    if mode is not None and mode not in ("paper", "pareto"):
        raise CrossnasError(f"--mode {mode!r}: allowed: paper, pareto")
    loaded = load_search(config, out, supernet_dir=supernet, overrides=parse_set_options(set_), mode=mode,
                         device=device)
    spec = loaded.evaluator
    if workers > 1:
        from dataclasses import replace

        spec = replace(spec, threads=1)  # one torch thread per worker process (spawned ones apply it)
        import torch

        torch.set_num_threads(1)  # this process is a worker too
    from crossnas.search.progress import progress_display

    prog, update = progress_display(not no_progress and sys.stderr.isatty())
    if prog is not None:
        prog.start()
    try:
        result = run_search(loaded.problem, spec, out, storage=storage, workers=workers, progress=update,
                            extra_info=loaded.info)
    finally:
        if prog is not None:
            prog.stop()
    s = result.summary
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    typer.echo(f"{s['evaluations']} candidates evaluated ({s['evaluated_here']} by this command), "
               f"{s['generations']} generations, front of {s['front_size']}, hypervolume {s['hypervolume']:.4f}")
    for b in s["best"]:
        genes = ", ".join(f"{k}={v}" for k, v in b["hardware_genes"].items())
        typer.echo(f"w_acc={b['w_acc']:g}: {b['arch']} | {genes} | accuracy {b['accuracy'] * 100:.2f}% "
                   f"latency {b['latency_ms']:.4g} ms energy {b['energy_mJ']:.4g} mJ EDP {b['edp_mJms']:.4g} mJ·ms "
                   f"area {b['area_mm2']:.4g} mm²")
    typer.echo(f"results in {out}/ (search.json, pareto.json, best.json)")


def compare(
    config: Path = typer.Option(..., "--config", "-c", help="The search config (its evolution settings and genes)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (supernet in; compare.json, compare.md out; every run saved in DIR/compare_runs/, so a rerun continues)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Evaluations per run (default population x generations)."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated subset of joint,joint_paper,random,two_stage,hw_blind."),
    supernet: Path | None = typer.Option(None, "--supernet", help="Supernet run directory, if not RUN_DIR."),
    device: str = typer.Option("cpu", "--device", help="Torch device for accuracy scoring."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a config value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison JSON on stdout."),
    reference_accuracy: float | None = typer.Option(None, "--reference-accuracy", help="Reference accuracy of the *_at_reference hypervolumes: only accuracy above it counts (default 0.8; 0 gives the plain hypervolume). Changing it reuses the saved runs."),
) -> None:
    """Joint search vs random, two-stage and hardware-blind baselines: hypervolume mean ± std.

    Resumable: every method x seed run is saved in DIR/compare_runs/; rerunning the same
    command skips finished runs and continues an interrupted one (another config is refused).
    """
    from crossnas.config.loading import parse_set_options
    from crossnas.search.compare import DEFAULT_REFERENCE_ACCURACY, METHODS, format_table
    from crossnas.search.compare import compare as run_compare
    from crossnas.search.loading import load_search
    from crossnas.utils.io import write_json, write_text

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise CrossnasError(f"--seeds {seeds!r}: expected comma-separated integers like 0,1,2") from exc
    if not seed_list:
        raise CrossnasError("--seeds: give at least one seed")
    chosen = tuple(m.strip() for m in methods.split(",")) if methods else METHODS
    bad = [m for m in chosen if m not in METHODS]
    if bad:
        raise CrossnasError(f"--methods: unknown {', '.join(bad)}; allowed: {', '.join(METHODS)}")
    ref = DEFAULT_REFERENCE_ACCURACY if reference_accuracy is None else reference_accuracy
    if not 0.0 <= ref < 1.0:
        raise CrossnasError(f"--reference-accuracy {ref:g}: must be in [0, 1), e.g. 0.8")
    loaded = load_search(config, out, supernet_dir=supernet, overrides=parse_set_options(set_), device=device)
    evaluator = loaded.evaluator()

    def report(method: str, seed: int, row: Any) -> None:
        how = " (saved run reused)" if row["reused"] else (
            f" (continued after {row['resumed_from']} saved evaluations)" if row["resumed_from"] else "")
        typer.echo(f"{method} seed {seed}: hypervolume {row['hypervolume']:.4f}, "
                   f"{row['hypervolume_at_reference']:.4f} above accuracy {ref:g}{how}", err=True)

    result = run_compare(loaded.problem, evaluator, seeds=seed_list, budget=budget, methods=chosen, progress=report,
                         runs_dir=out / "compare_runs", reference_accuracy=ref)
    result["info"] = loaded.info
    write_json(out / "compare.json", result)
    table = format_table(result)
    write_text(out / "compare.md", table + "\n")
    if all(r["hypervolume_at_reference"] == 0 for row in result["methods"].values() for r in row["runs"]):
        typer.echo(f"warning: no candidate is more accurate than the reference accuracy {ref:g}, so every "
                   "*_at_reference hypervolume is 0; rerun with a lower --reference-accuracy (the runs are reused)",
                   err=True)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(table)
        typer.echo(json.dumps(result["verdict"]))
        typer.echo(f"above accuracy {ref:g}: {json.dumps(result['verdict_at_reference'])}")


def register(app: typer.Typer) -> None:
    """Adds ``search`` and ``compare`` to ``app``."""
    app.command("search")(search)
    app.command("compare")(compare)
