"""CIFAR loaders on tiny files written in the exact python-pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from crossnas.config.data import DataConfig
from crossnas.data import load_data
from crossnas.errors import CrossnasError


def _write(path: Path, n: int, label_key: str, seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, n_classes, n).tolist()
    d = {b"batch_label": b"x", label_key.encode(): labels, b"data": data, b"filenames": [b"f"] * n}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(d, fh, protocol=2)
    return data, np.array(labels)


def _cifar10(root: Path, per_batch: int = 12) -> None:
    base = root / "cifar-10-batches-py"
    for i in range(1, 6):
        _write(base / f"data_batch_{i}", per_batch, "labels", i, 10)
    _write(base / "test_batch", 10, "labels", 9, 10)
    with (base / "batches.meta").open("wb") as fh:
        pickle.dump({b"label_names": [b"a"] * 10}, fh)


def test_cifar10_split_and_normalisation(tmp_path: Path) -> None:
    _cifar10(tmp_path)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), cifar_val=15)
    b = load_data(cfg)
    assert b.input_shape == (3, 32, 32) and b.n_classes == 10
    assert b.sizes() == {"train": 45, "val": 15, "test": 10}
    # the first test image, channel 0, pixel (0, 1) = byte 1 of the row, normalised
    raw, _ = _write(tmp_path / "again", 10, "labels", 9, 10)
    expect = (raw[0, 1] / 255.0 - 0.4914) / 0.2023
    assert float(b.test_x[0, 0, 0, 1]) == pytest.approx(expect, abs=1e-5)
    # green plane starts at byte 1024
    expect_g = (raw[0, 1024] / 255.0 - 0.4822) / 0.1994
    assert float(b.test_x[0, 1, 0, 0]) == pytest.approx(expect_g, abs=1e-5)
    again = load_data(cfg)
    assert np.array_equal(again.val_y.numpy(), b.val_y.numpy())
    other = load_data(DataConfig(dataset="cifar10", root=str(tmp_path), cifar_val=15, split_seed=1))
    assert not np.array_equal(other.val_x.numpy(), b.val_x.numpy())


def test_cifar100_layout(tmp_path: Path) -> None:
    base = tmp_path / "cifar-100-python"
    _write(base / "train", 30, "fine_labels", 1, 100)
    _write(base / "test", 7, "fine_labels", 2, 100)
    (base / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}))
    b = load_data(DataConfig(dataset="cifar100", root=str(tmp_path), cifar_val=10))
    assert b.n_classes == 100 and b.sizes() == {"train": 20, "val": 10, "test": 7}


def test_missing_and_corrupt_folders(tmp_path: Path) -> None:
    with pytest.raises(CrossnasError) as e:
        load_data(DataConfig(dataset="cifar10", root=str(tmp_path)))
    msg = str(e.value)
    assert "data_batch_1" in msg and "batches.meta" in msg and "University of Toronto" in msg and "\n" not in msg
    _cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(CrossnasError, match="data_batch_3 is corrupt"):
        load_data(DataConfig(dataset="cifar10", root=str(tmp_path), cifar_val=5))
    with pytest.raises(ValueError):
        DataConfig(dataset="cifar10")  # root required
