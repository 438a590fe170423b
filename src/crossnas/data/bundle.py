"""The loaded dataset: normalised tensors plus what a model needs to know about them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataBundle:
    """Normalised splits of one dataset (CPU tensors until a trainer moves them).

    Attributes:
        name: dataset name (``digits``, ``cifar10``, ``cifar100``).
        train_x, val_x, test_x: float32 images, shape ``(N, C, H, W)``, normalised.
        train_y, val_y, test_y: int64 labels, shape ``(N,)``.
        input_shape: ``(C, H, W)``.
        n_classes: number of classes.
        mean, std: per-channel normalisation constants applied, length ``C``.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    input_shape: tuple[int, int, int]
    n_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_hw(self) -> int:
        """Input height in pixels (images are square)."""
        return self.input_shape[1]

    def sizes(self) -> dict[str, int]:
        """Number of images per split."""
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}
