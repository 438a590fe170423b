"""Dataset configuration: which data, where it lives, how it is split and batched."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DATASETS = ("digits", "cifar10", "cifar100")


class DataConfig(BaseModel):
    """Which dataset to train and score on, and how to split and batch it.

    ``digits`` is scikit-learn's handwritten digits (1x8x8, 10 classes, ships offline):
    pixel values 0..16 are divided by 16 and standardised with the mean and standard
    deviation of the training split; the train/val/test split is stratified and
    deterministic given ``split_seed``.

    ``cifar10``/``cifar100`` are read from ``root`` in the standard python-pickle layout
    (``cifar-10-batches-py/`` or ``cifar-100-python/``); the official training set is split
    into ``len - cifar_val`` training and ``cifar_val`` validation images (the paper:
    42,500 / 7,500) by a permutation seeded with ``split_seed``; the official test set is
    the test split. Normalisation uses the paper code's channel mean/std.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["digits", "cifar10", "cifar100"] = "digits"
    root: str | None = None
    """Folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/`` (CIFAR only)."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Training batch size per process."""
    eval_batch_size: int = Field(512, ge=1, le=65536)
    """Batch size for validation/test passes (no gradients)."""
    split_seed: int = Field(0, ge=0)
    """Seed of the train/val(/test) split; independent of the training seed."""
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    """digits: fraction of all images used for validation."""
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    """digits: fraction of all images used for testing."""
    cifar_val: int = Field(7500, ge=1)
    """CIFAR: images of the official training set held out for validation (paper: 7,500)."""
    augment: bool | None = None
    """Random crop + horizontal flip on training batches; ``None`` = on for CIFAR, off for digits."""
    crop_pad: int = Field(4, ge=0, le=16)
    """Zero padding (pixels) before the random crop."""
    hflip: bool = True
    """Random horizontal flips (with probability 0.5) when augmenting."""

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.dataset != "digits" and not self.root:
            raise ValueError(
                f"root: required for dataset {self.dataset!r} (the folder holding the CIFAR python-pickle files)"
            )
        return self

    @property
    def augment_enabled(self) -> bool:
        """Whether training batches are augmented (resolves ``augment=None``)."""
        return self.augment if self.augment is not None else self.dataset != "digits"
