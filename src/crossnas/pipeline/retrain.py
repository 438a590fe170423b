"""Retraining one architecture on its own (``crossnas retrain``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from crossnas.config.hardware import HardwareConfig
from crossnas.config.run import RunConfig
from crossnas.config.train import TrainConfig
from crossnas.space.arch import ArchSpec
from crossnas.utils.io import stable_hash


def retrain_spec(cfg: RunConfig, spec: ArchSpec, data: Any, ckpt_dir: Path, *,
                 progress: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Trains ``spec`` from scratch with ``cfg.retrain`` (resumable from ``ckpt_dir``).

    Returns:
        ``(module in eval mode on the CPU, metrics)``.
    """
    from crossnas.supernet import build_static
    from crossnas.train import train_static

    train_cfg = TrainConfig.model_validate(cfg.retrain.model_dump(exclude={"winners"}))
    torch.manual_seed(cfg.seed * 1000 + 17)
    module = build_static(spec, cfg.space, tuple(data.input_shape), data.n_classes)
    res = train_static(module, data, train_cfg, data_cfg=cfg.data, seed=cfg.seed, out_dir=ckpt_dir,
                       resume=True, progress=progress)
    metrics = {"quantized_val_accuracy": res.extra.get("val_acc"), "quantized_test_accuracy": res.extra.get("test_acc"),
               "retrained_from_scratch": True, "retrain_epochs": train_cfg.epochs, "weight_noise": train_cfg.weight_noise}
    return res.model.eval().cpu(), metrics


def retrain_arch(cfg: RunConfig, arch: str, out: Path | None, *, run_dir: Path, hardware: HardwareConfig,
                 progress: bool = False) -> dict[str, Any]:
    """Trains ``arch`` from scratch and writes a model directory (``crossnas retrain``).

    Resumable: the checkpoint lives in ``<model dir>/train``; rerunning continues it.
    """
    from crossnas.data import load_data
    from crossnas.supernet.modeldir import save_model_dir

    spec = ArchSpec.from_string(arch)
    data = load_data(cfg.data)
    spec.validate(cfg.space, data.input_shape[1])
    dest = out if out is not None else run_dir / "retrained" / f"{stable_hash(str(spec))}"
    module, metrics = retrain_spec(cfg, spec, data, dest / "train", progress=progress)
    save_model_dir(dest, module, spec=spec, space=cfg.space, input_shape=tuple(data.input_shape),
                   n_classes=data.n_classes, data_cfg=cfg.data, hardware=hardware, metrics=metrics)
    return {"arch": str(spec), "model_dir": str(dest), **metrics}
