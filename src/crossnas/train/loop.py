"""The shared training loop (epochs, checkpoints, exact resume, weight noise, RNG states).

Its two users: :func:`crossnas.train.supernet.train_supernet` (SPOS, one uniformly
sampled path per step) and :func:`crossnas.train.static.train_static` (a static model,
quantization-aware from scratch).

Run directory of ``train_supernet``:

* ``run.json`` — format tag, the resolved config, input shape, number of classes.
* ``checkpoint.pt`` — written atomically after every epoch: model, optimizer, scheduler
  and grad-scaler states, the path sampler and shuffling generator states, the Python /
  NumPy / torch RNG states, the history.
* ``metrics.json`` — per-epoch history (loss, accuracy, validation accuracy of fixed
  random subnets, learning rate, seconds).
* ``supernet.pt`` — the final supernet state dict (written when the last epoch is done).
* ``train.log`` — the log.

Randomness and exact resume: the path sampler (NumPy ``PCG64``) and the shuffling
generator are persistent streams saved in the checkpoint; the augmentation generator and
torch's global RNG (dropout, weight noise) are re-seeded at every epoch start from
``(seed, epoch, rank)``. Resuming therefore continues bit-exactly on the same machine:
2 epochs straight and 1 + resume 1 give identical weights.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossnas.config.data import DataConfig
from crossnas.config.train import TrainConfig
from crossnas.data import DataBundle, augment_batch, n_steps, shuffled_batches
from crossnas.errors import CrossnasError
from crossnas.quant import QuantConv2d, QuantLinear
from crossnas.space.arch import ArchSpec
from crossnas.train.distributed import (
    DistContext,
    all_reduce_sum,
    average_gradients,
    barrier,
    broadcast_module,
)
from crossnas.train.progress import TrainProgress
from crossnas.utils.io import load_torch, save_torch, write_json

logger = logging.getLogger(__name__)

RUN_FORMAT = "crossnas-supernet-run/1"
CKPT_FORMAT = "crossnas-train-ckpt/1"
CHECKPOINT = "checkpoint.pt"
FINAL_WEIGHTS = "supernet.pt"
RUN_JSON = "run.json"
METRICS = "metrics.json"
LOG_FILE = "train.log"
# Config fields that may change between a run and its resume (they don't change results).
_RESUME_FREE = {("train", "device"), ("train", "threads"), ("train", "log_every"), ("train", "channels_last")}


@dataclass
class TrainResult:
    """Outcome of a training call.

    Attributes:
        model: the trained module (train mode, on the training device).
        history: one dict per finished epoch.
        epochs_done: epochs finished in total (including resumed ones).
        finished: all configured epochs are done.
        out_dir: the run directory (``None`` when nothing was written).
    """

    model: nn.Module
    history: list[dict[str, Any]]
    epochs_done: int
    finished: bool
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str, ctx: DistContext | None = None) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` → a device (per-process GPU under torchrun)."""
    ctx = ctx or DistContext()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise CrossnasError(f"train.device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CrossnasError(f"train.device: {name!r} requested but CUDA is not available; use cpu or auto")
        if dev.index is None:
            dev = torch.device("cuda", ctx.local_rank % max(torch.cuda.device_count(), 1))
    elif dev.type != "cpu":
        raise CrossnasError(f"train.device: {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _LrFactor:
    """Learning-rate multiplier per scheduler tick: linear warm-up, then cosine or constant.

    A tick is an epoch, or with ``scheduler_interval: step`` one optimiser step
    (``steps_per_epoch`` of them per epoch): the schedule is then read at fractional epochs
    and its last step reaches ``min_lr``."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int = 1) -> None:
        self.by_step = cfg.scheduler_interval == "step"
        self.per = max(steps_per_epoch, 1) if self.by_step else 1
        self.epochs = cfg.epochs
        self.warmup = min(cfg.warmup_epochs, cfg.epochs - 1) if cfg.epochs > 1 else 0
        self.cosine = cfg.scheduler == "cosine"
        self.floor = cfg.min_lr / cfg.lr

    def __call__(self, tick: int) -> float:
        warm_ticks = self.warmup * self.per
        if tick < warm_ticks:
            return (tick + 1) / (warm_ticks + 1)
        if not self.cosine:
            return 1.0
        # per epoch the last epoch trains at the tick before the schedule's end (the long-standing
        # behaviour); per step the last step is the schedule's end
        span = max(self.epochs * self.per - warm_ticks - int(self.by_step), 1)
        t = min(tick - warm_ticks, span) / span
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t))


def _make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )


def _rng_state() -> dict[str, Any]:
    st = np.random.get_state()
    assert isinstance(st, tuple)  # the legacy (default) form: ("MT19937", keys, pos, has_gauss, cached)
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np.asarray(st[1], dtype=np.int64)), "pos": int(st[2]),
                  "has_gauss": int(st[3]), "cached_gaussian": float(st[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(_to_tuple(st["python"]))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


@contextmanager
def _file_log(path: Path | None):  # type: ignore[no-untyped-def]
    """Sends ``crossnas`` log records (INFO and up) to ``path`` while active."""
    if path is None:
        yield
        return
    root = logging.getLogger("crossnas")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    old_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def _noisy_layers(model: nn.Module) -> list[QuantConv2d | QuantLinear]:
    return [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]


@contextmanager
def _weight_noise(layers: list[QuantConv2d | QuantLinear], sigma_rel: float, sigma_abs: float = 0.0):  # type: ignore[no-untyped-def]
    """Turns on the layers' weight noise (added to their fake-quantized weights in
    training-mode forwards, :func:`crossnas.quant.add_weight_noise`) for one step; off on exit.

    Wrap forward *and* backward: the gradient is taken at the noisy point and passed
    straight through to the clean weights.
    """
    if sigma_rel <= 0 and sigma_abs <= 0:
        yield
        return
    for m in layers:
        m.weight_noise, m.weight_noise_abs = sigma_rel, sigma_abs
    try:
        yield
    finally:
        for m in layers:
            m.weight_noise, m.weight_noise_abs = 0.0, 0.0


@torch.no_grad()
def evaluate_accuracy(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024
) -> float:
    """Top-1 accuracy (0..1) of ``forward`` (an eval-mode module or closure) on ``(x, y)``."""
    if len(y) == 0:
        return float("nan")
    correct = 0
    for xb, yb in zip(torch.split(x, batch_size), torch.split(y, batch_size), strict=True):
        correct += int((forward(xb).argmax(1) == yb).sum().item())
    return correct / len(y)


class _Loop:
    """The shared epoch/step machinery of supernet and static training."""

    def __init__(
        self,
        *,
        model: nn.Module,
        forward: Callable[[torch.Tensor, ArchSpec | None], torch.Tensor],
        sample: Callable[[np.random.Generator], ArchSpec] | None,
        data: DataBundle,
        data_cfg: DataConfig,
        cfg: TrainConfig,
        seed: int,
        device: torch.device,
        ctx: DistContext,
        out_dir: Path | None,
        kind: str,
        noise_layers: list[QuantConv2d | QuantLinear],
        validate: Callable[[], dict[str, Any]],
        progress: bool,
    ) -> None:
        self.model, self.forward, self.sample = model, forward, sample
        self.cfg, self.data_cfg, self.seed, self.device, self.ctx = cfg, data_cfg, seed, device, ctx
        self.out_dir, self.kind, self.noise_layers, self.validate = out_dir, kind, noise_layers, validate
        self.progress = progress and ctx.is_main
        self.train_x = data.train_x.to(device)
        self.train_y = data.train_y.to(device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = _make_optimizer(self.params, cfg)
        self.amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.path_rng = np.random.default_rng(_derive_seed(seed, 7))
        self.shuffle_gen = torch.Generator().manual_seed(_derive_seed(seed, 11))
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.steps_per_epoch = n_steps(len(self.train_y), data_cfg.batch_size, world_size=ctx.world_size)
        if self.steps_per_epoch == 0:
            raise CrossnasError(
                f"data.batch_size: {data_cfg.batch_size} x {ctx.world_size} process(es) exceeds the "
                f"{len(self.train_y)} training images; use a smaller batch size"
            )
        factor = _LrFactor(cfg, self.steps_per_epoch)
        self.per_step = factor.by_step
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)

    # ---- checkpoint ----------------------------------------------------------------------
    def state(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": CKPT_FORMAT,
            "kind": self.kind,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "path_rng": self.path_rng.bit_generator.state,
            "shuffle_rng": self.shuffle_gen.get_state(),
            "rng": _rng_state(),
            "history": self.history,
            "config": config,
        }

    def load(self, path: Path) -> None:
        ck = load_torch(path, map_location=self.device)
        if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT or ck.get("kind") != self.kind:
            raise CrossnasError(f"checkpoint {path} is not a crossnas {self.kind} checkpoint; use a new --out folder")
        try:
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
            if self.scaler is not None and ck.get("scaler"):
                self.scaler.load_state_dict(ck["scaler"])
            self.path_rng.bit_generator.state = ck["path_rng"]
            self.shuffle_gen.set_state(ck["shuffle_rng"].cpu())
            rng = ck["rng"]
            rng["torch"] = rng["torch"].cpu()
            _set_rng_state(rng)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CrossnasError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {str(exc)[:120]})") from exc
        self.epoch = int(ck["epoch"])
        self.history = list(ck["history"])
        logger.info("resumed from %s after epoch %d", path, self.epoch)

    # ---- training ---------------------------------------------------------------------------
    def run(self, end_epoch: int, config: dict[str, Any]) -> None:
        cfg, ctx, dev = self.cfg, self.ctx, self.device
        aug = self.data_cfg.augment_enabled
        total = cfg.epochs * self.steps_per_epoch
        refresh = 1 if dev.type == "cpu" else 10
        title = "supernet" if self.kind == "supernet" else "train"
        with TrainProgress(total, self.epoch * self.steps_per_epoch, enabled=self.progress, title=title) as bar:
            while self.epoch < end_epoch:
                t0 = time.perf_counter()
                e = self.epoch
                self.model.train()
                aug_gen = torch.Generator(device=dev).manual_seed(_derive_seed(self.seed, e, ctx.rank, 1))
                torch.manual_seed(_derive_seed(self.seed, e, ctx.rank, 2))
                lr = self.opt.param_groups[0]["lr"]
                sums = torch.zeros(3, dtype=torch.float64, device=dev)
                last_upd = 0
                batches = shuffled_batches(len(self.train_y), self.data_cfg.batch_size, self.shuffle_gen,
                                           rank=ctx.rank, world_size=ctx.world_size)
                for step, idx in enumerate(batches):
                    idx = idx.to(dev, non_blocking=True)
                    xb, yb = self.train_x[idx], self.train_y[idx]
                    if aug:
                        xb = augment_batch(xb, aug_gen, pad=self.data_cfg.crop_pad, hflip=self.data_cfg.hflip)
                    spec = self.sample(self.path_rng) if self.sample is not None else None
                    loss, logits = self._step(xb, yb, spec)
                    if self.per_step:
                        self.sched.step()
                    with torch.no_grad():
                        sums += torch.stack([
                            loss.detach().double() * len(yb),
                            (logits.argmax(1) == yb).sum().double(),
                            torch.tensor(float(len(yb)), dtype=torch.float64, device=dev),
                        ])
                    last_step = step + 1 == self.steps_per_epoch
                    if self.progress and ((step + 1) % refresh == 0 or last_step):
                        s = sums.tolist()
                        bar.update(step + 1 - last_upd, epoch=f"{e + 1}/{cfg.epochs}", loss=s[0] / s[2], acc=s[1] / s[2])
                        last_upd = step + 1
                    if ctx.is_main and ((step + 1) % cfg.log_every == 0):
                        s = sums.tolist()
                        logger.info("epoch %d step %d/%d loss %.4f acc %.4f lr %.5g", e + 1, step + 1,
                                    self.steps_per_epoch, s[0] / s[2], s[1] / s[2], self.opt.param_groups[0]["lr"])
                if not self.per_step:
                    self.sched.step()
                all_reduce_sum(sums, ctx)
                broadcast_module(self.model, ctx)  # BN statistics differ between processes
                s = sums.tolist()
                rec: dict[str, Any] = {"epoch": e + 1, "lr": lr, "train_loss": s[0] / max(s[2], 1),
                                       "train_acc": s[1] / max(s[2], 1)}
                if ctx.is_main:
                    rec.update(self.validate())
                rec["epoch_time_s"] = time.perf_counter() - t0
                self.history.append(rec)
                self.epoch += 1
                if ctx.is_main:
                    logger.info("epoch %d/%d %s", e + 1, cfg.epochs,
                                " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items() if k != "epoch"))
                    if self.out_dir is not None:
                        save_torch(self.out_dir / CHECKPOINT, self.state(config))
                        write_json(self.out_dir / METRICS, {"epochs_done": self.epoch, "history": self.history})
                barrier(ctx)

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, spec: ArchSpec | None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        if cfg.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        ac = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        with _weight_noise(self.noise_layers, cfg.weight_noise, cfg.weight_noise_abs):
            with ac:
                logits = self.forward(xb, spec)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
            self.opt.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        average_gradients(self.params, self.ctx)
        if cfg.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        return loss, logits


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _check_resume_config(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    diffs = []
    for sec in sorted(set(saved) | set(current)):
        a, b = saved.get(sec), current.get(sec)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if (sec, k) not in _RESUME_FREE and a.get(k) != b.get(k):
                    diffs.append(f"{sec}.{k}")
        elif a != b:
            diffs.append(sec)
    if diffs:
        raise CrossnasError(
            f"--resume: the config differs from the run's {path} in {', '.join(diffs)}; "
            "resume with the same config or start a new --out folder"
        )
