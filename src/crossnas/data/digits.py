"""scikit-learn's handwritten digits as 1x8x8 images."""

from __future__ import annotations

import numpy as np
import torch

from crossnas.config.data import DataConfig
from crossnas.data.bundle import DataBundle


def load_digits_bundle(cfg: DataConfig) -> DataBundle:
    """Loads the 1,797 digits, splits them stratified, normalises.

    Pixels (0..16) are divided by 16, then standardised with the training split's mean
    and standard deviation (one channel). The split is stratified by class and fixed by
    ``cfg.split_seed``: ``test_fraction`` of all images for test, ``val_fraction`` for
    validation, the rest for training.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = (ds.images.astype(np.float32) / 16.0)[:, None, :, :]  # (N, 1, 8, 8)
    y = ds.target.astype(np.int64)
    idx = np.arange(len(y))
    n_test = int(round(cfg.test_fraction * len(y)))
    n_val = int(round(cfg.val_fraction * len(y)))
    rest, test = train_test_split(idx, test_size=n_test, stratify=y, random_state=cfg.split_seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=cfg.split_seed + 1)
    train, val, test = np.sort(train), np.sort(val), np.sort(test)
    mean = float(x[train].mean())
    std = float(x[train].std())

    def norm(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a - mean) / std).float().contiguous()

    return DataBundle(
        name="digits",
        train_x=norm(x[train]),
        train_y=torch.from_numpy(y[train]),
        val_x=norm(x[val]),
        val_y=torch.from_numpy(y[val]),
        test_x=norm(x[test]),
        test_y=torch.from_numpy(y[test]),
        input_shape=(1, 8, 8),
        n_classes=10,
        mean=(mean,),
        std=(std,),
    )
