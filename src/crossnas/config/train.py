"""Training configuration (supernet and static retraining share it).

Defaults suit the digits dataset on a CPU. The CrossNAS paper's supernet settings
(its ``train_supernet.py``, CIFAR-10) are SGD with learning rate 0.001, momentum 0.9,
weight decay 3e-4, a cosine schedule over 1000 epochs, batch size 96, random crop
(4-pixel padding) and horizontal flips; ``configs/supernet_cifar10_paper.yaml`` sets them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class TrainConfig(BaseModel):
    """Optimiser, schedule, device and checkpointing of one training run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(30, ge=1, le=100000)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, le=10)
    """Peak learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum (ignored by AdamW)."""
    nesterov: bool = False
    weight_decay: float = Field(3e-4, ge=0, le=1)
    scheduler: Literal["cosine", "constant"] = "cosine"
    """``cosine``: cosine annealing from ``lr`` to ``min_lr`` over all epochs (stepped per epoch,
    or per step: ``scheduler_interval``)."""
    scheduler_interval: Literal["epoch", "step"] = "epoch"
    """When the learning rate changes. ``epoch``: once per epoch, so a 2-epoch cosine run trains its
    last epoch at half the peak rate and never anneals. ``step``: after every optimiser step, so the
    schedule (warm-up included) is followed at batch resolution and the last step is at ``min_lr``;
    use it for short trainings (a few epochs). Left out of the config dump at ``epoch``, so stage
    hashes of runs made before it hold."""
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: int = Field(0, ge=0)
    """Linear warm-up epochs before the schedule (0 = none)."""
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)
    """Clip the global gradient norm to this value (``None`` = no clipping)."""
    weight_noise: float = Field(0.0, ge=0, le=1)
    """Noise-aware training, relative part: Gaussian noise of std ``σ·|w|`` added to every
    fake-quantized weight in each training forward, i.e. ``w·(1 + σ·N(0,1))`` with the
    factor clamped at 0 (never in evaluation or search scoring). Physically the analog
    conductance variation of each cell, relative to its conductance: set it to the
    ``device.variation_pct / 100`` the model will be evaluated with (with weights sliced
    over several cells the simulator's per-weight std is 0.58-1 times ``σ·|w|``)."""
    weight_noise_abs: float = Field(0.0, ge=0, le=1)
    """Noise-aware training, state-independent part: Gaussian noise of std
    ``σ·max|w|`` (``max|w|`` of the weight's output channel, the quantizer's full scale)
    added alongside ``weight_noise``. Physically programming/read noise relative to
    ``G_max``, the same for every conductance state (the largest weight maps to
    ``G_max``); also what relative variation becomes under polarity-1 offset encoding.
    0 = off (left out of the config dump then, so stage hashes of earlier runs hold)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    amp: bool = False
    """Mixed precision (float16 autocast + gradient scaling); CUDA only, ignored on CPU."""
    threads: int | None = Field(None, ge=1, le=1024)
    """CPU threads for torch (``None`` = leave torch's default)."""
    channels_last: bool = True
    """Feed convolutions NHWC ("channels last") batches: oneDNN's CPU kernels and CUDA's
    tensor cores are faster on that layout (1.2-1.3x per supernet step at 3x32x32 on a
    2-core CPU, BENCHMARKS.md). Results agree up to float rounding; same setting + seed =
    same results."""
    val_subnets: int = Field(3, ge=0, le=100)
    """Supernet runs: after each epoch, score this many fixed random subnets (BN recalibrated)
    on the validation split and log their accuracies (0 = skip)."""
    val_bn_batches: int = Field(8, ge=1)
    """Training batches used to recalibrate BN statistics before each validation score."""
    log_every: int = Field(50, ge=1)
    """Log a training line every this many steps (the progress bar updates every step)."""

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # weight_noise_abs and scheduler_interval came later: left out at their defaults, a dump (and so the stage
        # hashes and the resume check of runs made before it) is unchanged.
        data: dict[str, Any] = handler(self)
        if self.weight_noise_abs == 0:
            data.pop("weight_noise_abs", None)
        if self.scheduler_interval == "epoch":
            data.pop("scheduler_interval", None)
        return data
