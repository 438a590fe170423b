"""Supernet training (SPOS over uniformly sampled paths), its run directory and loading it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossnas.config.supernet_run import SupernetRunConfig
from crossnas.data import DataBundle, load_data
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec, random_arch
from crossnas.supernet.network import Supernet
from crossnas.supernet.scorer import SubnetScorer
from crossnas.train.distributed import (
    DistContext,
    barrier,
    broadcast_module,
    destroy_process_group,
    init_process_group,
)
from crossnas.train.loop import (
    CHECKPOINT,
    FINAL_WEIGHTS,
    LOG_FILE,
    RUN_FORMAT,
    RUN_JSON,
    TrainResult,
    _check_resume_config,
    _derive_seed,
    _file_log,
    _Loop,
    _seed_all,
    resolve_device,
)
from crossnas.utils.io import load_torch, read_json, save_torch, write_json

logger = logging.getLogger(__name__)


def validation_specs(cfg: SupernetRunConfig, input_hw: int, n: int) -> list[ArchSpec]:
    """The fixed random subnets scored on the validation split after every epoch."""
    rng = np.random.default_rng(_derive_seed(cfg.seed, 99))
    return [random_arch(cfg.space, rng, input_hw) for _ in range(n)]


def train_supernet(
    cfg: SupernetRunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    dist: DistContext | None = None,
    stop_after: int | None = None,
    data: DataBundle | None = None,
) -> TrainResult:
    """Trains a supernet by single-path one-shot: one uniformly sampled valid path per step.

    Args:
        cfg: data, space, training settings and seed.
        out_dir: the run directory (created; see the module docstring for its files).
        resume: continue from ``out_dir/checkpoint.pt`` (the config must match); without
            a checkpoint the run starts from scratch.
        progress: draw a progress bar (rank 0 only).
        dist: data-parallel context (``None`` = single process).
        stop_after: stop once this many epochs are done in total (the schedule still
            spans ``cfg.train.epochs``); for time-sliced jobs and tests.
        data: an already loaded bundle for ``cfg.data`` (loaded when ``None``).

    Returns:
        :class:`TrainResult` with the :class:`Supernet` as ``model``.

    Raises:
        CrossnasError: the run dir already holds a run (without ``resume``), the resume
            config differs, a corrupt checkpoint, bad device, missing data.
    """
    ctx = dist or DistContext()
    out = Path(out_dir)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    ckpt = out / CHECKPOINT
    config = cfg.model_dump(mode="json")
    if ctx.is_main:
        if not resume and (ckpt.exists() or (out / RUN_JSON).exists()):
            raise CrossnasError(f"--out {out} already holds a supernet run; add --resume to continue it or pick a new folder")
        out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(tc.device, ctx)
    init_process_group(ctx, device)
    try:
        with _file_log(out / LOG_FILE if ctx.is_main else None):
            bundle = data if data is not None else load_data(cfg.data)
            if resume and (out / RUN_JSON).exists():
                run = read_json(out / RUN_JSON, "run file")
                _check_resume_config(run.get("config", {}), config, out / RUN_JSON)
            elif ctx.is_main:
                write_json(out / RUN_JSON, {"format": RUN_FORMAT, "config": config,
                                            "input_shape": list(bundle.input_shape), "n_classes": bundle.n_classes})
            _seed_all(cfg.seed)
            net = Supernet(cfg.space, bundle.input_shape, bundle.n_classes, weight_noise=tc.weight_noise,
                           weight_noise_abs=tc.weight_noise_abs).to(device)
            broadcast_module(net, ctx)
            hw = bundle.input_hw
            specs = validation_specs(cfg, hw, tc.val_subnets) if ctx.is_main else []
            scorer = (SubnetScorer(net, bundle, bn_batches=tc.val_bn_batches, batch_size=cfg.data.batch_size,
                                   eval_batch_size=cfg.data.eval_batch_size, device=device, seed=cfg.seed,
                                   channels_last=tc.channels_last)
                      if specs else None)

            def validate() -> dict[str, Any]:
                if scorer is None:
                    return {}
                scorer.refresh()
                accs = scorer.score_many(specs)
                scorer.restore()
                net.train()
                return {"val_acc_mean": float(np.mean(accs)), "val_acc_max": float(np.max(accs))}

            loop = _Loop(
                model=net, forward=lambda x, s: net(x, s), sample=lambda rng: random_arch(cfg.space, rng, hw),
                data=bundle, data_cfg=cfg.data, cfg=tc, seed=cfg.seed, device=device, ctx=ctx, out_dir=out,
                kind="supernet", noise_layers=[], validate=validate, progress=progress,
            )
            if resume and ckpt.exists():
                loop.load(ckpt)
            elif resume:
                logger.info("--resume: no checkpoint in %s, starting from epoch 0", out)
            if ctx.is_main:
                logger.info("supernet training: %s, %d train / %d val images, %d steps/epoch, device %s, %d process(es)",
                            bundle.name, len(bundle.train_y), len(bundle.val_y), loop.steps_per_epoch, device, ctx.world_size)
            end = tc.epochs if stop_after is None else min(tc.epochs, stop_after)
            loop.run(end, config)
            finished = loop.epoch >= tc.epochs
            if finished and ctx.is_main:
                save_torch(out / FINAL_WEIGHTS, net.state_dict())
                logger.info("supernet saved to %s", out / FINAL_WEIGHTS)
            barrier(ctx)
            return TrainResult(net, loop.history, loop.epoch, finished, out)
    finally:
        destroy_process_group(ctx)


@dataclass
class SupernetRun:
    """A trained supernet loaded from its run directory.

    Attributes:
        net: the supernet (eval mode).
        config: the run's config.
        input_shape, n_classes: what the supernet was built for.
        finished: whether training completed (else the weights are the last checkpoint's).
        epochs_done: finished epochs.
    """

    net: Supernet
    config: SupernetRunConfig
    input_shape: tuple[int, int, int]
    n_classes: int
    finished: bool
    epochs_done: int


def load_supernet(run_dir: str | Path, *, device: str | torch.device = "cpu") -> SupernetRun:
    """Loads the supernet of a ``crossnas supernet train`` run directory.

    Uses ``supernet.pt`` when training finished, else the latest ``checkpoint.pt``
    (with a warning).

    Raises:
        CrossnasError: not a run directory, or corrupt files.
    """
    d = Path(run_dir)
    meta = read_json(d / RUN_JSON, "supernet run file")
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise CrossnasError(f"{d / RUN_JSON} is not a crossnas supernet run file (format {RUN_FORMAT})")
    from pydantic import ValidationError

    from crossnas.errors import format_validation_error

    try:
        cfg = SupernetRunConfig.model_validate(meta["config"])
        input_shape = tuple(int(v) for v in meta["input_shape"])
        n_classes = int(meta["n_classes"])
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, str(d / RUN_JSON))) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CrossnasError(f"{d / RUN_JSON} is incomplete ({exc})") from exc
    net = Supernet(cfg.space, input_shape, n_classes, weight_noise=0.0)  # type: ignore[arg-type]
    epochs_done = cfg.train.epochs
    if (d / FINAL_WEIGHTS).exists():
        state, finished = load_torch(d / FINAL_WEIGHTS), True
    elif (d / CHECKPOINT).exists():
        ck = load_torch(d / CHECKPOINT)
        if not isinstance(ck, dict) or "model" not in ck:
            raise CrossnasError(f"{d / CHECKPOINT} is not a crossnas checkpoint")
        state, finished, epochs_done = ck["model"], False, int(ck.get("epoch", 0))
        logger.warning("%s: training not finished (%d of %d epochs); using the last checkpoint",
                       d, epochs_done, cfg.train.epochs)
    else:
        raise CrossnasError(f"{d}: no {FINAL_WEIGHTS} or {CHECKPOINT}; train first with crossnas supernet train")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CrossnasError(f"{d}: weights do not match the run's config ({type(exc).__name__})") from exc
    return SupernetRun(net.to(device).eval(), cfg, input_shape, n_classes, finished, epochs_done)  # type: ignore[arg-type]
