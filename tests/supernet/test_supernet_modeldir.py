"""Model directory: save/load round trip and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec
from crossnas.supernet import build_static
from crossnas.supernet.modeldir import load_model_dir, save_model_dir

SPACE = SpaceConfig(n_layers=3, widths=(4, 8), w_bits=(3, 5), a_bits=(4, 6), head={"fc": (12,)})
SPEC = ArchSpec.from_string("R8w5a6-S-V4w3a4")


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    m = build_static(SPEC, SPACE, (1, 8, 8), 10)
    m.train()
    with torch.no_grad():
        m(torch.randn(16, 1, 8, 8))  # calibrate clips / BN
    m.eval()
    d = save_model_dir(tmp_path / "model", m, spec=SPEC, space=SPACE, input_shape=(1, 8, 8), n_classes=10,
                       data_cfg=DataConfig(), hardware=HardwareConfig(), metrics={"val_acc": 0.5})
    return d, m


def test_round_trip(tmp_path: Path) -> None:
    d, m = _saved(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    assert meta["format"] == "crossnas-model/1" and meta["arch"] == str(SPEC) and meta["n_classes"] == 10
    lm = load_model_dir(d)
    assert lm.spec == SPEC and lm.space == SPACE and lm.input_shape == (1, 8, 8)
    assert lm.hardware == HardwareConfig() and lm.data_cfg == DataConfig() and lm.metrics == {"val_acc": 0.5}
    assert not lm.module.training
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(lm.module(x), m(x))


def test_corrupt_or_missing_files(tmp_path: Path) -> None:
    d, _ = _saved(tmp_path)
    (d / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CrossnasError, match="corrupt"):
        load_model_dir(d)
    with pytest.raises(CrossnasError, match="not found"):
        load_model_dir(tmp_path / "nope")
    (d / "model.json").write_text("{broken")
    with pytest.raises(CrossnasError, match="not valid JSON"):
        load_model_dir(d)


def test_weights_of_another_arch_are_rejected(tmp_path: Path) -> None:
    d, _ = _saved(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    meta["arch"] = "R4w5a6-S-V4w3a4"
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CrossnasError, match="does not fit"):
        load_model_dir(d)
    meta["format"] = "other"
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CrossnasError, match="format"):
        load_model_dir(d)
