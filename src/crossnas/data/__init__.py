"""Datasets: scikit-learn digits (default, offline) and CIFAR-10/100 from a local folder.

``load_data(cfg)`` returns a :class:`DataBundle` of normalised CPU tensors; training code
moves them to its device once and augments whole batches there (:func:`augment_batch`).
"""

from __future__ import annotations

from crossnas.config.data import DataConfig
from crossnas.data.augment import augment_batch, n_steps, shuffled_batches
from crossnas.data.bundle import DataBundle


def load_data(cfg: DataConfig) -> DataBundle:
    """Loads the dataset ``cfg`` names.

    Raises:
        CrossnasError: CIFAR folder missing or corrupt (one line naming the expected files).
    """
    if cfg.dataset == "digits":
        from crossnas.data.digits import load_digits_bundle

        return load_digits_bundle(cfg)
    from crossnas.data.cifar import load_cifar_bundle

    return load_cifar_bundle(cfg)


RAW_INPUT = {
    "digits": "scikit-learn digits pixel values (0..16) divided by 16, i.e. floats in 0..1, shape (N, 1, 8, 8)",
    "cifar10": "8-bit RGB pixel values divided by 255, i.e. floats in 0..1, shape (N, 3, 32, 32), channels R, G, B",
    "cifar100": "8-bit RGB pixel values divided by 255, i.e. floats in 0..1, shape (N, 3, 32, 32), channels R, G, B",
}
"""The raw input scale of each dataset: what the loader holds before subtracting ``mean`` and
dividing by ``std`` (``(raw - mean) / std`` is what models are trained on)."""


def input_normalization(cfg: DataConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` :func:`load_data` applies to the raw input (:data:`RAW_INPUT`).

    CIFAR uses fixed constants (no files are read); digits' come from its training split,
    so the (small, bundled) dataset is loaded and split as for training.
    """
    if cfg.dataset == "digits":
        from crossnas.data.digits import load_digits_bundle

        b = load_digits_bundle(cfg)
        return b.mean, b.std
    from crossnas.data.cifar import CIFAR_MEAN, CIFAR_STD

    return CIFAR_MEAN, CIFAR_STD


__all__ = ["RAW_INPUT", "DataBundle", "augment_batch", "input_normalization", "load_data", "n_steps",
           "shuffled_batches"]
