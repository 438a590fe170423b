"""``crossnas supernet train`` and ``crossnas supernet score``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def _dist_from_env():  # type: ignore[no-untyped-def]
    """torchrun's environment → DistContext (the CLI is the only place reading it)."""
    from crossnas.train import DistContext

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return DistContext(
        rank=int(os.environ.get("RANK", "0")), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Train the weight-sharing supernet and score subnets.", no_args_is_help=True)
    app.add_typer(sub, name="supernet")

    @sub.command("train")
    def train(
        config: Path = typer.Option(..., "--config", "-c", help="YAML/JSON with data:, space:, train:, seed:."),
        out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, log, final weights)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's checkpoint."),
        set_: list[str] = typer.Option([], "--set", help="Override a config value, e.g. train.epochs=5."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Train a supernet (single process, or one per process under torchrun)."""
        from crossnas.config.loading import parse_set_options
        from crossnas.config.supernet_run import SupernetRunConfig
        from crossnas.train import train_supernet

        cfg = SupernetRunConfig.from_file(config, parse_set_options(set_))
        dist = _dist_from_env()
        res = train_supernet(cfg, out, resume=resume, progress=not no_progress, dist=dist)
        if dist is None or dist.is_main:
            last = res.history[-1] if res.history else {}
            acc = last.get("val_acc_mean")
            tail = f", val acc of {cfg.train.val_subnets} random subnets {acc:.1%}" if acc is not None else ""
            typer.echo(f"supernet: {res.epochs_done}/{cfg.train.epochs} epochs in {out}{tail}")

    @sub.command("score")
    def score(
        run_dir: Path = typer.Argument(..., help="A run directory of 'crossnas supernet train'."),
        arch: list[str] = typer.Option([], "--arch", "-a", help="Architecture string, e.g. V64w7a5-S-R32w9a9-... (repeatable)."),
        random: int = typer.Option(0, "--random", help="Also score this many random valid subnets."),
        bn_batches: int = typer.Option(8, "--bn-batches", help="Training batches for BN recalibration."),
        seed: int = typer.Option(0, "--seed", help="Seed of --random and of the recalibration images."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Validation accuracy of subnets with inherited weights (BN recalibrated)."""
        import numpy as np

        from crossnas.data import load_data
        from crossnas.errors import CrossnasError
        from crossnas.space.arch import ArchSpec, random_arch
        from crossnas.supernet import SubnetScorer
        from crossnas.train import load_supernet, resolve_device

        if not arch and random <= 0:
            raise CrossnasError("supernet score: give --arch ARCH (repeatable) and/or --random N")
        run = load_supernet(run_dir, device=resolve_device(device))
        data = load_data(run.config.data)
        specs = [ArchSpec.from_string(a).validate(run.config.space, data.input_hw) for a in arch]
        rng = np.random.default_rng(seed)
        specs += [random_arch(run.config.space, rng, data.input_hw) for _ in range(random)]
        scorer = SubnetScorer(run.net, data, bn_batches=bn_batches, batch_size=run.config.data.batch_size,
                              eval_batch_size=run.config.data.eval_batch_size, seed=seed,
                              channels_last=run.config.train.channels_last)
        accs = scorer.score_many(specs)
        rows = [{"arch": str(s), "val_acc": a} for s, a in zip(specs, accs, strict=True)]
        if as_json:
            typer.echo(json.dumps({"run": str(run_dir), "finished": run.finished, "results": rows}, indent=2))
            return
        for r in rows:
            typer.echo(f"{r['val_acc']:7.2%}  {r['arch']}")
