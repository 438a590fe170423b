"""Supernet/static training: exact resume, run-dir guards, CLI, DDP via torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from crossnas.cli.main import main
from crossnas.config.data import DataConfig
from crossnas.config.supernet_run import SupernetRunConfig
from crossnas.config.train import TrainConfig
from crossnas.data import load_data
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec
from crossnas.supernet import build_static
from crossnas.train import load_supernet, train_static, train_supernet

RAW = {
    "seed": 3,
    "data": {"dataset": "digits", "batch_size": 128, "augment": True, "crop_pad": 1, "hflip": False},
    "space": {"n_layers": 2, "widths": [4, 8], "w_bits": [4, 6], "a_bits": [4, 6], "head": {"fc": [16]}},
    "train": {"epochs": 2, "lr": 0.05, "val_subnets": 1, "val_bn_batches": 1, "weight_noise": 0.05},
}


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data(SupernetRunConfig.model_validate(RAW).data)


def test_resume_continues_exactly(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    cfg = SupernetRunConfig.model_validate(RAW)
    straight = train_supernet(cfg, tmp_path / "a", data=digits)
    part = train_supernet(cfg, tmp_path / "b", data=digits, stop_after=1)
    assert part.epochs_done == 1 and not part.finished and not (tmp_path / "b" / "supernet.pt").exists()
    resumed = train_supernet(cfg, tmp_path / "b", data=digits, resume=True)
    assert resumed.finished and resumed.epochs_done == 2
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "path_rng", "shuffle_rng", "rng"} <= set(ck)
    assert ck["epoch"] == 2 and "python" in ck["rng"] and "numpy" in ck["rng"]
    assert (tmp_path / "b" / "train.log").read_text().count("epoch 2/2") >= 1
    run = load_supernet(tmp_path / "b")
    assert run.finished and run.input_shape == (1, 8, 8)
    assert all(torch.equal(v, sa[k]) for k, v in run.net.state_dict().items())


def test_run_dir_guards(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    cfg = SupernetRunConfig.model_validate({**RAW, "train": {**RAW["train"], "epochs": 1}})
    train_supernet(cfg, tmp_path / "r", data=digits)
    with pytest.raises(CrossnasError, match="--resume"):
        train_supernet(cfg, tmp_path / "r", data=digits)
    other = SupernetRunConfig.model_validate({**RAW, "train": {**RAW["train"], "epochs": 1, "lr": 0.1}})
    with pytest.raises(CrossnasError, match="train.lr"):
        train_supernet(other, tmp_path / "r", data=digits, resume=True)
    (tmp_path / "r" / "supernet.pt").write_bytes(b"junk")
    with pytest.raises(CrossnasError, match="corrupt"):
        load_supernet(tmp_path / "r")


def test_train_static_learns(digits) -> None:  # type: ignore[no-untyped-def]
    cfg = SupernetRunConfig.model_validate(RAW)
    torch.manual_seed(0)
    m = build_static(ArchSpec.from_string("v8w6a6-S"), cfg.space, digits.input_shape, digits.n_classes)
    res = train_static(m, digits, TrainConfig(epochs=3, lr=0.05), data_cfg=DataConfig(batch_size=32), seed=0)
    assert res.finished and res.extra["val_acc"] > 0.6
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_cli_train_and_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({**RAW, "train": {**RAW["train"], "epochs": 1}}))
    out = tmp_path / "run"
    assert main(["supernet", "train", "--config", str(conf), "--out", str(out), "--no-progress"]) == 0
    assert main(["supernet", "score", str(out), "--arch", "v8w6a6-R4w4a4", "--random", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert [r["arch"] for r in res["results"]][0] == "v8w6a6-R4w4a4" and len(res["results"]) == 3
    assert all(0 <= r["val_acc"] <= 1 for r in res["results"])
    assert main(["supernet", "score", str(out), "--arch", "V8w6a6-V8w6a6-V8w6a6"]) == 2
    assert "error:" in capsys.readouterr().err
    conf.write_text(yaml.safe_dump({**RAW, "train": {"epochs": 0}}))
    assert main(["supernet", "train", "--config", str(conf), "--out", str(tmp_path / "x")]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({**RAW, "data": {**RAW["data"], "batch_size": 64},
                                    "train": {**RAW["train"], "epochs": 1, "threads": 1}}))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "crossnas.cli.main", "supernet", "train",
           "--config", str(conf), "--out", str(out), "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "2 process(es)" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_done"] == 1
    run = load_supernet(out)
    assert run.finished and all(torch.isfinite(p).all() for p in run.net.parameters())
