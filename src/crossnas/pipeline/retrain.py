"""Retraining one architecture on its own (``crossnas retrain``)."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossnas.config.hardware import HardwareConfig
from crossnas.config.run import RunConfig
from crossnas.config.train import TrainConfig
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec
from crossnas.utils.io import load_torch, read_json, stable_hash, write_json

logger = logging.getLogger(__name__)

RETRAIN_JSON = "retrain.json"
"""Written into the checkpoint folder: what the retraining there was started with."""
RETRAIN_FORMAT = "crossnas-retrain/1"
_INIT_SEED_SALT = (1000, 17)  # initial weights: seed * 1000 + 17


def retrain_config(cfg: RunConfig, spec: ArchSpec) -> dict[str, Any]:
    """What a retraining computes from: the network, the data, the seed and the
    ``retrain`` settings, less the how-it-runs ones (device, threads, ...), which resume
    and reuse a retraining freely."""
    from crossnas.pipeline.run import _section

    train = _section(cfg, "retrain")
    train.pop("winners", None)
    return {"arch": str(spec), "space": cfg.space.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
            "seed": cfg.seed, "retrain": train}


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    diffs = []
    for sec in sorted(set(saved) | set(current)):
        a, b = saved.get(sec), current.get(sec)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{sec}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(sec)
    return diffs


def _check_resume(ckpt_dir: Path, config: dict[str, Any], train_cfg: TrainConfig, cfg: RunConfig, hint: str) -> None:
    """Refuses to continue (or reuse) a retraining in ``ckpt_dir`` made with another config;
    records ``config`` there when it starts afresh."""
    meta = ckpt_dir / RETRAIN_JSON
    ckpt = ckpt_dir / "checkpoint.pt"
    if meta.exists():
        saved = read_json(meta, "retrain record")
        if not isinstance(saved, dict) or saved.get("format") != RETRAIN_FORMAT:
            raise CrossnasError(f"{meta} is not a crossnas retrain record; {hint}")
        diffs = _differences(saved.get("config") or {}, config)
    elif ckpt.exists():  # a checkpoint of a version without retrain.json: compare what it holds
        from crossnas.pipeline.run import _NEUTRAL

        saved = load_torch(ckpt).get("config") or {}
        train = {k: v for k, v in (saved.get("train") or {}).items() if k not in _NEUTRAL["retrain"]}
        now = {k: v for k, v in train_cfg.model_dump(mode="json").items() if k not in _NEUTRAL["retrain"]}
        diffs = _differences({"train": train, "data": saved.get("data"), "seed": saved.get("seed")},
                             {"train": now, "data": cfg.data.model_dump(mode="json"), "seed": cfg.seed})
    else:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json(meta, {"format": RETRAIN_FORMAT, "config": config})
        return
    if diffs:
        raise CrossnasError(
            f"{ckpt_dir} holds a retraining with another config (differs in {', '.join(diffs)}); {hint}"
        )
    if not meta.exists():
        write_json(meta, {"format": RETRAIN_FORMAT, "config": config})


@contextmanager
def own_global_rng() -> Iterator[None]:
    """Restores the global Python, NumPy and torch (CPU and CUDA) RNG states on exit.

    Training seeds and resumes torch's global RNG (weight init, dropout, weight noise);
    a library call must not leave the caller's random streams changed.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def retrain_spec(cfg: RunConfig, spec: ArchSpec, data: Any, ckpt_dir: Path, *,
                 progress: bool = False,
                 hint: str = "rerun with --force retrain") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Trains ``spec`` from scratch with ``cfg.retrain`` (resumable from ``ckpt_dir``).

    The same config gives the same model, whatever the caller's global RNG states, which
    are left as they were.

    Args:
        hint: the end of the error raised when ``ckpt_dir`` holds a retraining with
            another config (what the user should do).

    Returns:
        ``(module in eval mode on the CPU, metrics)``.

    Raises:
        CrossnasError: ``ckpt_dir`` holds a retraining with another config, corrupt files.
    """
    from crossnas.supernet import build_static
    from crossnas.train import train_static

    train_cfg = TrainConfig.model_validate(cfg.retrain.model_dump(exclude={"winners"}))
    _check_resume(Path(ckpt_dir), retrain_config(cfg, spec), train_cfg, cfg, hint)
    with own_global_rng():
        # weight init draws from torch's global RNG: seed it inside the forked scope only
        torch.manual_seed(cfg.seed * _INIT_SEED_SALT[0] + _INIT_SEED_SALT[1])
        module = build_static(spec, cfg.space, tuple(data.input_shape), data.n_classes)
        res = train_static(module, data, train_cfg, data_cfg=cfg.data, seed=cfg.seed, out_dir=ckpt_dir,
                           resume=True, progress=progress)
    metrics = {"quantized_val_accuracy": res.extra.get("val_acc"), "quantized_test_accuracy": res.extra.get("test_acc"),
               "retrained_from_scratch": True, "retrain_epochs": train_cfg.epochs, "weight_noise": train_cfg.weight_noise}
    return res.model.eval().cpu(), metrics


def retrain_arch(cfg: RunConfig, arch: str, out: Path | None, *, run_dir: Path, hardware: HardwareConfig,
                 progress: bool = False) -> dict[str, Any]:
    """Trains ``arch`` from scratch and writes a model directory (``crossnas retrain``).

    Resumable: the checkpoint lives in ``<model dir>/train``; rerunning with the same
    config continues (or reuses) it. The default model directory,
    ``RUN_DIR/retrained/<arch hash>-<config hash>``, is keyed by the config, so another
    config retrains into a new folder; an ``out`` folder holding a retraining with another
    config is refused.
    """
    from crossnas.data import load_data
    from crossnas.supernet.modeldir import save_model_dir

    spec = ArchSpec.from_string(arch)
    data = load_data(cfg.data)
    spec.validate(cfg.space, data.input_shape[1])
    key = f"{stable_hash(str(spec))[:8]}-{stable_hash(retrain_config(cfg, spec))[:8]}"
    dest = out if out is not None else run_dir / "retrained" / key
    module, metrics = retrain_spec(cfg, spec, data, dest / "train", progress=progress,
                                   hint="use another --out (or remove that folder)")
    save_model_dir(dest, module, spec=spec, space=cfg.space, input_shape=data.input_shape,
                   n_classes=data.n_classes, data_cfg=cfg.data, hardware=hardware, metrics=metrics)
    return {"arch": str(spec), "model_dir": str(dest), **metrics}
