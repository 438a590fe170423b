"""``crossnas run`` (the whole pipeline), ``retrain``, ``report`` and ``export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from crossnas.errors import CrossnasError


def _model_dir(path: Path) -> Path:
    """A model directory, or a run directory's ``winner/``."""
    if (path / "model.json").is_file():
        return path
    if (path / "winner" / "model.json").is_file():
        return path / "winner"
    raise CrossnasError(f"{path} is neither a model directory (model.json) nor a run directory with winner/model.json")


def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="Run config YAML (default: the built-in digits config)."),
    out: Path = typer.Option(Path("runs/digits"), "--out", "-o", help="Run directory (created; rerun to continue)."),
    force: list[str] | None = typer.Option(None, "--force", help="Redo a stage and the ones after it: supernet|search|retrain|evaluate|report (repeatable)."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a config value, e.g. --set search.evolution.generations=5 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="End by printing the summary as one JSON object."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Train the supernet, search, retrain the winner(s), evaluate PIM accuracy and cost, write the report."""
    from crossnas.config.loading import parse_set_options
    from crossnas.config.run import load_run_config
    from crossnas.pipeline import run_pipeline

    cfg = load_run_config(config, parse_set_options(set_))
    progress = not no_progress and sys.stderr.isatty()

    def on_stage(stage: str, what: str) -> None:
        msg = {"start": f"[{stage}] running", "skip": f"[{stage}] already done, skipped", "done": f"[{stage}] done"}[what]
        typer.echo(msg, err=True)

    summary = run_pipeline(cfg, out, force=force or (), progress=progress, until=until, on_stage=on_stage)
    if as_json:
        typer.echo(json.dumps(summary))
    elif "pim_accuracy_mean" in summary:
        s = summary
        typer.echo(
            f"winner {s['arch']}\n"
            f"  PIM accuracy {100 * s['pim_accuracy_mean']:.2f} ± {100 * s['pim_accuracy_std']:.2f} % "
            f"(quantized {100 * s['quantized_accuracy']:.2f} %)\n"
            f"  latency {s['latency_ms']:.4g} ms, energy {s['energy_mJ']:.4g} mJ, EDP {s['edp_mJms']:.4g} mJ·ms, "
            f"area {s['area_mm2']:.4g} mm²\n"
            f"  search time {s['search_time_h']:.3f} h; model in {s['winner_dir']}; report {s['report_html']}"
        )


def retrain(
    run_dir: Path = typer.Argument(..., help="A run directory (its config and data are used)."),
    arch: str = typer.Option(..., "--arch", help="Architecture string, e.g. V32w7a5-S-R64w9a9-..."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Model directory to write (default RUN_DIR/retrained/<arch hash>-<config hash>; a folder holding a retraining with another config is refused)."),
    hardware: Path | None = typer.Option(None, "--hardware", help="Hardware YAML/JSON to store with the model (default: the run's base hardware)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a run config value, e.g. retrain.epochs=10."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Retrain one architecture from scratch (quantization-aware at its bits) and save a model directory."""
    from crossnas.config.hardware import HardwareConfig
    from crossnas.config.loading import load_yaml_or_json, parse_set_options
    from crossnas.config.run import load_run_config
    from crossnas.pipeline.retrain import retrain_arch

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise CrossnasError(f"{run_dir} is not a crossnas run directory (config.yaml missing)")
    cfg = load_run_config(cfg_path, parse_set_options(set_))
    hw = HardwareConfig.model_validate(load_yaml_or_json(hardware, "hardware")) if hardware else cfg.hardware
    res = retrain_arch(cfg, arch, out, run_dir=run_dir, hardware=hw, progress=sys.stderr.isatty())
    typer.echo(json.dumps(res) if as_json else
               f"retrained {res['arch']}: val {100 * res['quantized_val_accuracy']:.2f} %, "
               f"test {100 * res['quantized_test_accuracy']:.2f} %; model in {res['model_dir']}")


def report(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    title: str = typer.Option("crossnas run report", "--title", help="Report title."),
) -> None:
    """Write RUN_DIR/report/report.md and a self-contained report.html with plots."""
    from crossnas.report.build import write_report

    paths = write_report(run_dir, title=title)
    typer.echo(f"wrote {paths['md']} and {paths['html']}")


def export(
    path: Path = typer.Argument(..., help="A run directory (its winner) or a model directory."),
    fmt: str = typer.Option(..., "--format", "-f", help="pytorch | onnx | mnsim"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default PATH/export-<format>)."),
    normalized_input: bool = typer.Option(False, "--normalized-input", help="pytorch/onnx: the exported model takes images already normalised with the dataset's mean/std (default: raw images, digits pixel/16 or CIFAR pixel/255, normalised inside the model)."),
) -> None:
    """Export the winner: standalone PyTorch module + weights, ONNX, or MNSIM layer list + SimConfig.ini.

    The PyTorch and ONNX exports take raw images and apply the training normalisation themselves."""
    from crossnas.export.run import export_model

    if fmt not in ("pytorch", "onnx", "mnsim"):
        raise CrossnasError(f"--format {fmt!r}: allowed: pytorch, onnx, mnsim")
    if normalized_input and fmt == "mnsim":
        raise CrossnasError("--normalized-input applies to --format pytorch and onnx, not mnsim")
    mdir = _model_dir(path)
    dest = out if out is not None else path / f"export-{fmt}"
    written = export_model(mdir, dest, fmt, normalize_input=not normalized_input)
    for p in written:
        typer.echo(str(p))


def register(app: typer.Typer) -> None:
    """Adds ``run``, ``retrain``, ``report`` and ``export``."""
    app.command("run")(run)
    app.command("retrain")(retrain)
    app.command("report")(report)
    app.command("export")(export)
