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


__all__ = ["DataBundle", "augment_batch", "load_data", "n_steps", "shuffled_batches"]
