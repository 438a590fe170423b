"""Dataset configuration: which data, where it lives, how it is split and batched."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion_mnist")

IDX_DATASETS = ("mnist", "fashion_mnist")
"""Datasets read from the four IDX files (``train-images-idx3-ubyte.gz`` ...) in ``root``."""

DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
}
"""Input shape ``(C, H, W)`` and number of classes of each dataset (known without loading it)."""

_ROOT_HOLDS = {
    "cifar10": "the folder holding cifar-10-batches-py/",
    "cifar100": "the folder holding cifar-100-python/",
    "mnist": "the folder holding train-images-idx3-ubyte.gz and the other three MNIST IDX files",
    "fashion_mnist": "the folder holding train-images-idx3-ubyte.gz and the other three Fashion-MNIST IDX files",
}


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

    ``mnist``/``fashion_mnist`` (1x28x28, 10 classes) are read from the four IDX files in
    ``root`` (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``); the training file is
    split into ``len - mnist_val`` training and ``mnist_val`` validation images as for
    CIFAR, the t10k files are the test split. Pixels / 255 are normalised with fixed
    constants (``crossnas.data.mnist``). Augmentation as for CIFAR (random crop after
    ``crop_pad`` zero padding, default 2 pixels here), horizontal flips only for
    Fashion-MNIST (a mirrored digit is another glyph).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["digits", "cifar10", "cifar100", "mnist", "fashion_mnist"] = "digits"
    root: str | None = None
    """Folder holding the dataset's files (CIFAR, MNIST, Fashion-MNIST; ``crossnas data fetch``
    puts them there)."""
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
    mnist_val: int = Field(5000, ge=1)
    """MNIST / Fashion-MNIST: images of the training file held out for validation."""
    test_images: int | None = Field(None, ge=1)
    """Score on a random subset of this many test images (drawn with ``split_seed``);
    ``None`` = the whole test split. For CPU runs of the 28x28 and 32x32 datasets, whose PIM
    evaluation of 10,000 test images would take hours (the crossbar simulation costs ~1 s
    per image and chip there); accuracies then carry that smaller sample's noise."""
    augment: bool | None = None
    """Random crop + horizontal flip on training batches; ``None`` = on for CIFAR, MNIST and
    Fashion-MNIST, off for digits."""
    crop_pad: int = Field(4, ge=0, le=16)
    """Zero padding (pixels) before the random crop; unset: 2 for MNIST / Fashion-MNIST, else 4."""
    hflip: bool = True
    """Random horizontal flips (with probability 0.5) when augmenting; unset: off for MNIST,
    else on."""

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, data: Any) -> Any:
        # 28x28 images get a 2-pixel crop; mirrored digits are other glyphs. Filled in here
        # (not as None) so the fields stay plain values and dumps of older configs are unchanged.
        if isinstance(data, dict) and data.get("dataset") in IDX_DATASETS:
            data = dict(data)
            data.setdefault("crop_pad", 2)
            if data.get("dataset") == "mnist":
                data.setdefault("hflip", False)
        return data

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.dataset != "digits" and not self.root:
            raise ValueError(f"root: required for dataset {self.dataset!r} ({_ROOT_HOLDS[self.dataset]})")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # mnist_val and test_images came later: left out where they do not apply / are unset,
        # so the stage hashes and resume checks of runs made before them are unchanged.
        data: dict[str, Any] = handler(self)
        if self.dataset not in IDX_DATASETS:
            data.pop("mnist_val", None)
        if self.test_images is None:
            data.pop("test_images", None)
        return data

    @property
    def augment_enabled(self) -> bool:
        """Whether training batches are augmented (resolves ``augment=None``)."""
        return self.augment if self.augment is not None else self.dataset != "digits"
