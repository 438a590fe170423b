"""MNIST and Fashion-MNIST from the four IDX files in a local folder.

Expected files in ``root`` (the names both datasets publish, gzip-compressed; the
uncompressed files without ``.gz`` are read too)::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

``crossnas data fetch mnist|fashion-mnist --root DIR`` downloads the official files (the
official 60,000 / 10,000 split). Images are 28x28 grayscale bytes, labels 0..9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crossnas.config.data import DataConfig
from crossnas.data.bundle import DataBundle
from crossnas.data.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxFormatError, read_idx
from crossnas.errors import CrossnasError

# Mean and std of all pixels / 255 of the official training files (60,000 images): the
# values common practice uses for MNIST, and the same computation for Fashion-MNIST.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
NORMALIZATION = {"mnist": (MNIST_MEAN, MNIST_STD), "fashion_mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD)}

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
"""The four files (without ``.gz``): training images and labels, test images and labels."""
IMAGE_HW = 28
N_CLASSES = 10
_FETCH_NAME = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}


def expected_files() -> list[str]:
    """File names the loader needs (gzip-compressed, as published)."""
    return [f"{f}.gz" for f in IDX_FILES]


def _problem(dataset: str, root: Path, what: str) -> CrossnasError:
    return CrossnasError(
        f"data.root {root}: {what}; {dataset} needs the IDX files {', '.join(expected_files())} there "
        f"(get them with `crossnas data fetch {_FETCH_NAME[dataset]} --root {root}`)"
    )


def _find(root: Path, name: str) -> Path | None:
    for cand in (root / f"{name}.gz", root / name):
        if cand.is_file():
            return cand
    return None


def _read(path: Path, magic: int, dataset: str, root: Path) -> np.ndarray:
    try:
        return read_idx(path, magic)
    except IdxFormatError as exc:
        raise _problem(dataset, root, f"{path.name} is not a valid IDX file: {exc}") from None
    except OSError as exc:
        raise _problem(dataset, root, f"cannot read {path.name}: {exc.strerror or exc}") from None


def _split_files(paths: dict[str, Path], prefix: str, dataset: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    img_path, lab_path = paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"]
    x = _read(img_path, IMAGES_MAGIC, dataset, root)
    y = _read(lab_path, LABELS_MAGIC, dataset, root)
    if x.shape[1:] != (IMAGE_HW, IMAGE_HW):
        raise _problem(dataset, root, f"{img_path.name} holds {x.shape[1]}x{x.shape[2]} images, "
                                      f"{IMAGE_HW}x{IMAGE_HW} expected")
    if len(x) != len(y):
        raise _problem(dataset, root, f"{lab_path.name} holds {len(y)} labels but {img_path.name} {len(x)} images")
    if len(y) and int(y.max()) >= N_CLASSES:
        raise _problem(dataset, root, f"{lab_path.name} has label {int(y.max())}, outside 0..{N_CLASSES - 1}")
    return x, y.astype(np.int64)


def load_mnist_bundle(cfg: DataConfig) -> DataBundle:
    """Loads MNIST or Fashion-MNIST, splits train into train/val (``cfg.mnist_val``), normalises.

    Raises:
        CrossnasError: a file missing or malformed (one line naming it and the files needed),
            or ``mnist_val`` not smaller than the training file.
    """
    assert cfg.root is not None  # guaranteed by DataConfig validation
    root = Path(cfg.root).expanduser()
    found = {name: _find(root, name) for name in IDX_FILES}
    missing = [f"{name}.gz" for name, p in found.items() if p is None]
    if missing:
        raise _problem(cfg.dataset, root, f"missing {', '.join(missing)}")
    paths = {name: p for name, p in found.items() if p is not None}
    x_all, y_all = _split_files(paths, "train", cfg.dataset, root)
    x_test, y_test = _split_files(paths, "t10k", cfg.dataset, root)
    if cfg.mnist_val >= len(y_all):
        raise CrossnasError(
            f"data.mnist_val: {cfg.mnist_val} validation images requested but the training set has {len(y_all)}"
        )
    perm = np.random.default_rng(cfg.split_seed).permutation(len(y_all))
    val_idx, train_idx = np.sort(perm[: cfg.mnist_val]), np.sort(perm[cfg.mnist_val :])
    mean_t, std_t = NORMALIZATION[cfg.dataset]
    mean, std = mean_t[0], std_t[0]

    def norm(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a if a.flags.writeable else a.copy()).float().div_(255.0)
        return t.sub_(mean).div_(std).unsqueeze(1)  # (N, 1, 28, 28)

    return DataBundle(
        name=cfg.dataset,
        train_x=norm(x_all[train_idx]),
        train_y=torch.from_numpy(y_all[train_idx]),
        val_x=norm(x_all[val_idx]),
        val_y=torch.from_numpy(y_all[val_idx]),
        test_x=norm(x_test),
        test_y=torch.from_numpy(y_test),
        input_shape=(1, IMAGE_HW, IMAGE_HW),
        n_classes=N_CLASSES,
        mean=mean_t,
        std=std_t,
    )
