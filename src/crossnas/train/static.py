"""Training one static network from scratch (quantization-aware, optional weight noise), resumable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crossnas.config.data import DataConfig
from crossnas.config.train import TrainConfig
from crossnas.data import DataBundle
from crossnas.train.distributed import (
    DistContext,
    broadcast_module,
    destroy_process_group,
    init_process_group,
)
from crossnas.train.loop import (
    CHECKPOINT,
    LOG_FILE,
    TrainResult,
    _file_log,
    _Loop,
    _noisy_layers,
    evaluate_accuracy,
    resolve_device,
)

logger = logging.getLogger(__name__)


def train_static(
    module: nn.Module,
    data: DataBundle,
    train_cfg: TrainConfig,
    *,
    data_cfg: DataConfig | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    dist: DistContext | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Trains a static model (quantization-aware when its layers carry bits) from its
    current weights, e.g. a :func:`crossnas.supernet.build_static` model from scratch.

    Weight noise (``train_cfg.weight_noise`` relative, ``weight_noise_abs``
    state-independent) perturbs every QuantConv2d/QuantLinear fake-quantized weight in
    each step's forward; the gradient passes straight through to the clean weights.
    After every epoch the validation accuracy is logged; ``extra`` of the result holds
    ``val_acc`` and ``test_acc`` of the final model.

    Args:
        module: the model (moved to the training device, trained in place).
        data: dataset bundle.
        train_cfg: optimiser/schedule/device.
        data_cfg: batch sizes and augmentation (default: ``DataConfig(augment=False)``,
            batch 64; pass the run's data config).
        seed: shuffling/augmentation/dropout seed.
        out_dir: where to write ``checkpoint.pt``/``metrics.json``/``train.log`` (``None`` =
            nothing written, no resume).
        resume: continue from ``out_dir/checkpoint.pt``.
        progress: draw a progress bar.
        dist: data-parallel context.
        stop_after: stop after this many epochs in total.
    """
    ctx = dist or DistContext()
    dcfg = data_cfg or DataConfig(augment=False)
    device = resolve_device(train_cfg.device, ctx)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    init_process_group(ctx, device)
    try:
        with _file_log(out / LOG_FILE if (out is not None and ctx.is_main) else None):
            module = module.to(device)
            broadcast_module(module, ctx)
            val_x, val_y = data.val_x.to(device), data.val_y.to(device)

            def validate() -> dict[str, Any]:
                module.eval()
                acc = evaluate_accuracy(module, val_x, val_y, batch_size=dcfg.eval_batch_size)
                module.train()
                return {"val_acc": acc}

            loop = _Loop(
                model=module, forward=lambda x, s: module(x), sample=None, data=data, data_cfg=dcfg,
                cfg=train_cfg, seed=seed, device=device, ctx=ctx, out_dir=out, kind="static",
                noise_layers=_noisy_layers(module), validate=validate, progress=progress,
            )
            if resume and out is not None and (out / CHECKPOINT).exists():
                loop.load(out / CHECKPOINT)
            config = {"train": train_cfg.model_dump(mode="json"), "data": dcfg.model_dump(mode="json"), "seed": seed}
            end = train_cfg.epochs if stop_after is None else min(train_cfg.epochs, stop_after)
            loop.run(end, config)
            module.eval()
            extra = {
                "val_acc": evaluate_accuracy(module, val_x, val_y, batch_size=dcfg.eval_batch_size),
                "test_acc": evaluate_accuracy(module, data.test_x.to(device), data.test_y.to(device),
                                              batch_size=dcfg.eval_batch_size),
            }
            module.train()
            return TrainResult(module, loop.history, loop.epoch, loop.epoch >= train_cfg.epochs, out, extra)
    finally:
        destroy_process_group(ctx)
