"""CIFAR-10 / CIFAR-100 from a local folder in the standard python-pickle layout.

Expected files (the archives ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``
from the CIFAR page of the University of Toronto, extracted into ``root``)::

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    root/cifar-100-python/{train, test, meta}

Each data file is a pickled dict with ``b"data"`` (uint8, ``(N, 3072)``, row-major
RGB planes) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). Nothing is
ever downloaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossnas.config.data import DataConfig
from crossnas.data.bundle import DataBundle
from crossnas.errors import CrossnasError

# Channel statistics used by the CrossNAS paper code (also common practice for CIFAR).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)

_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", 100),
}
_SOURCE = "the CIFAR page of the University of Toronto (python version), extracted into the root folder"


def expected_files(dataset: str) -> list[str]:
    """Relative paths the loader needs for ``dataset``."""
    folder, train, test, meta, _key, _n = _LAYOUT[dataset]
    return [f"{folder}/{f}" for f in [*train, *test, meta]]


def _missing(dataset: str, root: Path, what: str) -> CrossnasError:
    return CrossnasError(
        f"data.root {root}: {what}; {dataset} needs {', '.join(expected_files(dataset))} "
        f"(get the archive from {_SOURCE})"
    )


def _read_batch(path: Path, label_key: bytes, dataset: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as fh:
            d: Any = pickle.load(fh, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64)
    except Exception as exc:  # unpickling errors come in many types
        raise _missing(dataset, root, f"{path.name} is corrupt ({type(exc).__name__})") from exc
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise _missing(dataset, root, f"{path.name} is corrupt (data shape {data.shape}, {len(labels)} labels)")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar_bundle(cfg: DataConfig) -> DataBundle:
    """Loads CIFAR-10/100, splits train into train/val (``cfg.cifar_val``), normalises."""
    assert cfg.root is not None  # guaranteed by DataConfig validation
    root = Path(cfg.root).expanduser()
    folder, train_files, test_files, meta, label_key, n_classes = _LAYOUT[cfg.dataset]
    base = root / folder
    missing = [f for f in expected_files(cfg.dataset) if not (root / f).is_file()]
    if missing:
        raise _missing(cfg.dataset, root, f"missing {', '.join(missing)}")
    xs, ys = zip(*(_read_batch(base / f, label_key, cfg.dataset, root) for f in train_files), strict=True)
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    tx, ty = zip(*(_read_batch(base / f, label_key, cfg.dataset, root) for f in test_files), strict=True)
    x_test, y_test = np.concatenate(tx), np.concatenate(ty)
    if y_all.min(initial=0) < 0 or max(y_all.max(initial=0), y_test.max(initial=0)) >= n_classes:
        raise _missing(cfg.dataset, root, f"labels outside 0..{n_classes - 1}")
    if cfg.cifar_val >= len(y_all):
        raise CrossnasError(
            f"data.cifar_val: {cfg.cifar_val} validation images requested but the training set has {len(y_all)}"
        )
    perm = np.random.default_rng(cfg.split_seed).permutation(len(y_all))
    val_idx, train_idx = np.sort(perm[: cfg.cifar_val]), np.sort(perm[cfg.cifar_val :])
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def norm(a: np.ndarray) -> torch.Tensor:
        return ((torch.from_numpy(a).float() / 255.0) - mean) / std

    return DataBundle(
        name=cfg.dataset,
        train_x=norm(x_all[train_idx]),
        train_y=torch.from_numpy(y_all[train_idx]),
        val_x=norm(x_all[val_idx]),
        val_y=torch.from_numpy(y_all[val_idx]),
        test_x=norm(x_test),
        test_y=torch.from_numpy(y_test),
        input_shape=(3, 32, 32),
        n_classes=n_classes,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
    )
