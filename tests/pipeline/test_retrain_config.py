"""``crossnas retrain``: a changed config retrains (or is refused), and the caller's global
RNG states are left alone (one tiny network on digits, one epoch; a few seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from crossnas.cli.main import main
from crossnas.config.run import RunConfig
from crossnas.errors import CrossnasError
from crossnas.pipeline.retrain import RETRAIN_JSON, retrain_arch, retrain_spec
from crossnas.space.arch import ArchSpec

TINY = {
    "seed": 0,
    "data": {"dataset": "digits", "batch_size": 64},
    "space": {"n_layers": 2, "widths": [8, 16], "w_bits": [4, 6], "a_bits": [4, 6], "head": {"fc": [32]}},
    "retrain": {"epochs": 1, "lr": 0.05, "threads": 1, "device": "cpu"},
}
ARCH = "V8w4a4-V16w6a6"


def _cfg(**retrain: object) -> RunConfig:
    return RunConfig.model_validate({**TINY, "retrain": {**TINY["retrain"], **retrain}})


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "weights.pt", weights_only=True)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    from crossnas.data import load_data

    return load_data(_cfg().data)


def test_changed_config_retrains_into_its_own_folder(tmp_path: Path) -> None:
    first = retrain_arch(_cfg(), ARCH, None, run_dir=tmp_path, hardware=_cfg().hardware)
    again = retrain_arch(_cfg(threads=2), ARCH, None, run_dir=tmp_path, hardware=_cfg().hardware)
    assert again["model_dir"] == first["model_dir"]  # how-it-runs settings reuse the model
    changed = retrain_arch(_cfg(lr=0.5, weight_noise=0.1), ARCH, None, run_dir=tmp_path, hardware=_cfg().hardware)
    assert changed["model_dir"] != first["model_dir"] and changed["weight_noise"] == 0.1
    assert not _same(_weights(Path(first["model_dir"])), _weights(Path(changed["model_dir"])))
    meta = json.loads((Path(changed["model_dir"]) / "train" / RETRAIN_JSON).read_text())
    assert meta["config"]["retrain"]["lr"] == 0.5 and meta["config"]["arch"] == ARCH


def test_out_folder_of_another_config_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(_cfg().model_dump(mode="json")))
    out = tmp_path / "model"
    assert main(["retrain", str(run_dir), "--arch", ARCH, "--out", str(out)]) == 0
    weights = (out / "weights.pt").read_bytes()
    capsys.readouterr()
    assert main(["retrain", str(run_dir), "--arch", ARCH, "--out", str(out),
                 "--set", "retrain.lr=0.5", "--set", "retrain.weight_noise=0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert "another config" in err and "retrain.lr" in err and "retrain.weight_noise" in err
    assert (out / "weights.pt").read_bytes() == weights
    assert json.loads((out / "model.json").read_text())["metrics"]["weight_noise"] == 0.0


def test_checkpoint_without_record_is_checked_too(tmp_path: Path, data: object) -> None:
    spec = ArchSpec.from_string(ARCH)
    retrain_spec(_cfg(), spec, data, tmp_path / "ck")
    (tmp_path / "ck" / RETRAIN_JSON).unlink()  # as left by a version before the record
    with pytest.raises(CrossnasError, match=r"another config \(differs in train.lr\)"):
        retrain_spec(_cfg(lr=0.5), spec, data, tmp_path / "ck")
    retrain_spec(_cfg(threads=2), spec, data, tmp_path / "ck")  # same config: reused, record written
    assert (tmp_path / "ck" / RETRAIN_JSON).exists()


def test_global_rng_untouched_and_result_deterministic(tmp_path: Path, data: object) -> None:
    spec = ArchSpec.from_string(ARCH)
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    m1, _ = retrain_spec(_cfg(), spec, data, tmp_path / "a")
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert all(np.array_equal(x, y) for x, y in zip(before[2], after[2], strict=True))
    torch.manual_seed(999)  # another caller state: the same model
    m2, _ = retrain_spec(_cfg(), spec, data, tmp_path / "b")
    assert _same(m1.state_dict(), m2.state_dict())
