"""Noise-aware training: device-like weight noise in supernet and static training only."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from crossnas.config.data import DataConfig
from crossnas.config.run import RunConfig
from crossnas.config.supernet_run import SupernetRunConfig
from crossnas.config.train import TrainConfig
from crossnas.data import load_data
from crossnas.pipeline.run import stage_hashes
from crossnas.quant import QuantConv2d, QuantLinear
from crossnas.space.arch import ArchSpec
from crossnas.supernet import Supernet, build_static
from crossnas.train import train_static, train_supernet

RAW = {
    "seed": 3,
    "data": {"dataset": "digits", "batch_size": 128},
    "space": {"n_layers": 2, "widths": [4, 8], "w_bits": [4, 6], "a_bits": [4, 6], "head": {"fc": [16], "dropout": 0.0}},
    "train": {"epochs": 1, "lr": 0.05, "val_subnets": 0},
}
ARCH = "v8w6a6-S"


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data(SupernetRunConfig.model_validate(RAW).data)


def _static_state(digits, **noise: float) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    space = SupernetRunConfig.model_validate(RAW).space
    torch.manual_seed(0)
    m = build_static(ArchSpec.from_string(ARCH), space, digits.input_shape, digits.n_classes)
    res = train_static(m, digits, TrainConfig(epochs=1, lr=0.05, threads=1, **noise),
                       data_cfg=DataConfig(batch_size=64), seed=0)
    layers = [x for x in res.model.modules() if isinstance(x, (QuantConv2d, QuantLinear))]
    assert layers and all(x.weight_noise == 0 and x.weight_noise_abs == 0 for x in layers)  # off after training
    return {k: v.clone() for k, v in res.model.state_dict().items()}


def test_static_training_noise_is_seeded_and_reaches_the_layers(digits) -> None:  # type: ignore[no-untyped-def]
    clean = _static_state(digits)
    a = _static_state(digits, weight_noise=0.02, weight_noise_abs=0.01)
    b = _static_state(digits, weight_noise=0.02, weight_noise_abs=0.01)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same noise
    assert not torch.equal(a["features.0.conv1.weight"], clean["features.0.conv1.weight"])
    absolute = _static_state(digits, weight_noise_abs=0.01)
    assert not torch.equal(absolute["features.0.conv1.weight"], clean["features.0.conv1.weight"])


def test_supernet_state_independent_noise_only_in_training() -> None:
    space = SupernetRunConfig.model_validate(RAW).space
    torch.manual_seed(0)
    noisy = Supernet(space, (1, 8, 8), 10, weight_noise_abs=0.1)
    clean = Supernet(space, (1, 8, 8), 10)
    clean.load_state_dict(noisy.state_dict())
    spec, x = ArchSpec.from_string(ARCH), torch.randn(16, 1, 8, 8)
    noisy.eval(), clean.eval()
    assert torch.equal(noisy(x, spec), clean(x, spec))
    twin = copy.deepcopy(noisy)  # training forwards update BN statistics and clips
    noisy.train(), clean.train(), twin.train()
    torch.manual_seed(1)
    y1 = noisy(x, spec)
    torch.manual_seed(1)
    assert not torch.allclose(y1, clean(x, spec))
    torch.manual_seed(1)
    assert torch.equal(y1, twin(x, spec))  # deterministic for a seed


def test_train_supernet_uses_both_noise_parts(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    def run(name: str, **noise: float) -> dict[str, torch.Tensor]:
        cfg = SupernetRunConfig.model_validate({**RAW, "train": {**RAW["train"], **noise}})
        assert cfg.train.weight_noise_abs == noise.get("weight_noise_abs", 0.0)
        return train_supernet(cfg, tmp_path / name, data=digits).model.state_dict()

    clean, noisy = run("clean"), run("abs", weight_noise_abs=0.02)
    assert not torch.equal(clean["head.fcs.0.weight"], noisy["head.fcs.0.weight"])


def test_weight_noise_abs_config() -> None:
    assert "weight_noise_abs" not in TrainConfig().model_dump()  # default: dump (hashes) as before
    cfg = RunConfig.model_validate({"train": {"weight_noise": 0.02, "weight_noise_abs": 0.01},
                                    "retrain": {"weight_noise_abs": 0.005}})
    assert cfg.model_dump(mode="json")["train"]["weight_noise_abs"] == 0.01
    assert RunConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    base = stage_hashes(RunConfig())
    assert stage_hashes(cfg)["supernet"] != base["supernet"]
    only_retrain = stage_hashes(RunConfig.model_validate({"retrain": {"weight_noise_abs": 0.01}}))
    assert only_retrain["search"] == base["search"] and only_retrain["retrain"] != base["retrain"]
    with pytest.raises(ValueError):
        TrainConfig(weight_noise_abs=1.5)
