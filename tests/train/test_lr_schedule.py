"""The learning-rate schedule: per epoch (the default) or per optimiser step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.config.data import DataConfig
from crossnas.config.supernet_run import SupernetRunConfig
from crossnas.config.train import TrainConfig
from crossnas.data import load_data
from crossnas.space.arch import ArchSpec
from crossnas.supernet import build_static
from crossnas.train import train_static
from crossnas.train.loop import _LrFactor

RAW = {
    "seed": 3,
    "data": {"dataset": "digits", "batch_size": 128},
    "space": {"n_layers": 2, "widths": [4, 8], "w_bits": [4, 6], "a_bits": [4, 6], "head": {"fc": [16], "dropout": 0.0}},
    "train": {"epochs": 1, "lr": 0.05, "val_subnets": 0},
}


@settings(max_examples=60, deadline=None)
@given(epochs=st.integers(1, 6), per=st.integers(1, 40), warmup=st.integers(0, 3),
       floor=st.sampled_from([0.0, 0.001, 0.01]))
def test_per_step_cosine_warms_up_then_never_rises_and_ends_at_min_lr(epochs: int, per: int, warmup: int,
                                                                       floor: float) -> None:
    cfg = TrainConfig(epochs=epochs, lr=0.1, min_lr=floor, warmup_epochs=warmup, scheduler_interval="step")
    f = _LrFactor(cfg, per)
    ticks = [f(k) for k in range(epochs * per)]  # the factor of every training step
    warm = min(warmup, epochs - 1) * per if epochs > 1 else 0
    assert all(a < b for a, b in zip(ticks[:warm], ticks[1:warm + 1], strict=False)) or warm == 0
    after = ticks[warm:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:], strict=False))
    if len(after) > 1:
        assert after[0] == pytest.approx(1.0)
        assert after[-1] == pytest.approx(floor / 0.1)  # the last step trains at min_lr


def test_per_epoch_cosine_is_unchanged() -> None:
    """The default keeps its long-standing values: 2 epochs train at 1.0 and 0.5 of the peak."""
    f = _LrFactor(TrainConfig(epochs=2, lr=0.1), 50)
    assert [f(0), f(1)] == [pytest.approx(1.0), pytest.approx(0.5)]
    g = _LrFactor(TrainConfig(epochs=5, lr=0.1, warmup_epochs=1), 50)
    assert [g(k) for k in range(5)] == pytest.approx([0.5] + [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])


def test_scheduler_interval_is_dumped_only_when_set() -> None:
    assert "scheduler_interval" not in TrainConfig().model_dump()
    assert TrainConfig(scheduler_interval="step").model_dump()["scheduler_interval"] == "step"
    with pytest.raises(ValueError, match="scheduler_interval"):
        TrainConfig(scheduler_interval="batch")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data(SupernetRunConfig.model_validate(RAW).data)


def _train(digits, tmp: Path | None = None, stop_after: int | None = None, resume: bool = False,  # type: ignore[no-untyped-def]
           **kw: str):
    space = SupernetRunConfig.model_validate(RAW).space
    torch.manual_seed(0)
    m = build_static(ArchSpec.from_string("v8w6a6-S"), space, digits.input_shape, digits.n_classes)
    return train_static(m, digits, TrainConfig(epochs=2, lr=0.05, threads=1, **kw),  # type: ignore[arg-type]
                        data_cfg=DataConfig(batch_size=64), seed=0, out_dir=tmp, stop_after=stop_after, resume=resume)


def test_per_step_schedule_drives_training_and_resumes_exactly(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    by_epoch = _train(digits)
    by_step = _train(digits, scheduler_interval="step")
    # per epoch the second epoch starts at half the peak; per step it has already annealed past it
    assert by_epoch.history[1]["lr"] == pytest.approx(0.025)
    assert by_step.history[1]["lr"] < 0.025
    a = by_epoch.model.state_dict()["features.0.conv1.weight"]
    b = by_step.model.state_dict()["features.0.conv1.weight"]
    assert not torch.equal(a, b)
    # interrupted after one epoch and resumed: the per-step scheduler state carries over
    _train(digits, tmp_path / "run", stop_after=1, scheduler_interval="step")
    resumed = _train(digits, tmp_path / "run", resume=True, scheduler_interval="step")
    assert resumed.history[1]["lr"] == pytest.approx(by_step.history[1]["lr"])
    assert torch.equal(resumed.model.state_dict()["features.0.conv1.weight"], b)
