"""Datasets: scikit-learn digits (default, offline); CIFAR-10/100, MNIST and Fashion-MNIST from a local folder.

``load_data(cfg)`` returns a :class:`DataBundle` of normalised CPU tensors; training code
moves them to its device once and augments whole batches there (:func:`augment_batch`).
"""

from __future__ import annotations

import dataclasses

from crossnas.config.data import IDX_DATASETS, DataConfig
from crossnas.data.augment import augment_batch, n_steps, shuffled_batches
from crossnas.data.bundle import DataBundle
from crossnas.errors import CrossnasError


def load_data(cfg: DataConfig) -> DataBundle:
    """Loads the dataset ``cfg`` names (its test split cut to ``cfg.test_images`` when set).

    Raises:
        CrossnasError: dataset files missing or corrupt (one line naming the expected files),
            or ``test_images`` larger than the test split.
    """
    if cfg.dataset == "digits":
        from crossnas.data.digits import load_digits_bundle

        bundle = load_digits_bundle(cfg)
    elif cfg.dataset in IDX_DATASETS:
        from crossnas.data.mnist import load_mnist_bundle

        bundle = load_mnist_bundle(cfg)
    else:
        from crossnas.data.cifar import load_cifar_bundle

        bundle = load_cifar_bundle(cfg)
    return _test_subset(bundle, cfg.test_images, cfg.split_seed)


def _test_subset(bundle: DataBundle, n: int | None, seed: int) -> DataBundle:
    """``bundle`` with ``n`` of its test images, drawn without replacement (kept in file order)."""
    if n is None:
        return bundle
    n_test = len(bundle.test_y)
    if n > n_test:
        raise CrossnasError(f"data.test_images: {n} requested but the {bundle.name} test split has {n_test}")
    import numpy as np
    import torch

    idx = torch.from_numpy(np.sort(np.random.default_rng([seed, 1]).permutation(n_test)[:n]))
    return dataclasses.replace(bundle, test_x=bundle.test_x[idx], test_y=bundle.test_y[idx])


RAW_INPUT = {
    "digits": "scikit-learn digits pixel values (0..16) divided by 16, i.e. floats in 0..1, shape (N, 1, 8, 8)",
    "cifar10": "8-bit RGB pixel values divided by 255, i.e. floats in 0..1, shape (N, 3, 32, 32), channels R, G, B",
    "cifar100": "8-bit RGB pixel values divided by 255, i.e. floats in 0..1, shape (N, 3, 32, 32), channels R, G, B",
    "mnist": "8-bit grayscale pixel values divided by 255, i.e. floats in 0..1, shape (N, 1, 28, 28)",
    "fashion_mnist": "8-bit grayscale pixel values divided by 255, i.e. floats in 0..1, shape (N, 1, 28, 28)",
}
"""The raw input scale of each dataset: what the loader holds before subtracting ``mean`` and
dividing by ``std`` (``(raw - mean) / std`` is what models are trained on)."""


def input_normalization(cfg: DataConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` :func:`load_data` applies to the raw input (:data:`RAW_INPUT`).

    CIFAR, MNIST and Fashion-MNIST use fixed constants (no files are read); digits' come from its training split,
    so the (small, bundled) dataset is loaded and split as for training.
    """
    if cfg.dataset == "digits":
        from crossnas.data.digits import load_digits_bundle

        b = load_digits_bundle(cfg)
        return b.mean, b.std
    if cfg.dataset in IDX_DATASETS:
        from crossnas.data.mnist import NORMALIZATION

        return NORMALIZATION[cfg.dataset]
    from crossnas.data.cifar import CIFAR_MEAN, CIFAR_STD

    return CIFAR_MEAN, CIFAR_STD


__all__ = ["RAW_INPUT", "DataBundle", "augment_batch", "input_normalization", "load_data", "n_steps",
           "shuffled_batches"]
