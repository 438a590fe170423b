"""Training: the supernet (SPOS), static models (QAT from scratch), checkpoints, DDP."""

from __future__ import annotations

from crossnas.train.distributed import DistContext
from crossnas.train.loop import TrainResult, evaluate_accuracy, resolve_device
from crossnas.train.static import train_static
from crossnas.train.supernet import SupernetRun, load_supernet, train_supernet, validation_specs

__all__ = [
    "DistContext",
    "SupernetRun",
    "TrainResult",
    "evaluate_accuracy",
    "load_supernet",
    "resolve_device",
    "train_static",
    "train_supernet",
    "validation_specs",
]
