"""Batch augmentation as tensor ops on the training device, and batch iteration."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, *, pad: int = 4, hflip: bool = True
) -> torch.Tensor:
    """Random crop after zero padding plus random horizontal flip, for a whole batch.

    One gather does both: for image ``i`` the output pixel ``(r, c)`` reads padded pixel
    ``(r + dy_i, c + dx_i)`` (column mirrored when flipped). Padding is zero in the
    normalised space (= the dataset mean colour).

    Args:
        x: images, shape ``(B, C, H, W)``, on any device.
        generator: a ``torch.Generator`` on ``x.device`` (the only randomness used).
        pad: padding in pixels; ``0`` disables the crop.
        hflip: flip each image horizontally with probability 0.5.

    Returns:
        A new tensor, shape ``(B, C, H, W)``.
    """
    b, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    else:
        xp = x
        dy = torch.zeros(b, dtype=torch.long, device=dev)
        dx = torch.zeros(b, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev).expand(b, w)
    if hflip:
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        cols = torch.where(flip[:, None], (w - 1) - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]  # (B, H)
    cols = dx[:, None] + cols  # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def shuffled_batches(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = True,
    rank: int = 0, world_size: int = 1,
) -> Iterator[torch.Tensor]:
    """Index batches of one epoch: a seeded permutation, cut into per-process batches.

    With ``world_size`` processes every process draws the same permutation and takes the
    ``rank``-th slice of each global batch of ``batch_size * world_size`` indices, so the
    processes see disjoint data and the same number of steps.

    Args:
        n: dataset size.
        batch_size: per-process batch size.
        generator: CPU generator defining the permutation.
        drop_last: drop a final incomplete global batch (keeps BatchNorm batches full).
        rank, world_size: this process's place among data-parallel processes.

    Yields:
        int64 index tensors of shape ``(batch_size,)`` (CPU).
    """
    perm = torch.randperm(n, generator=generator)
    gb = batch_size * world_size
    n_full = n // gb
    for i in range(n_full):
        start = i * gb + rank * batch_size
        yield perm[start : start + batch_size]
    rest = n - n_full * gb
    if not drop_last and rest > 0:
        tail = perm[n_full * gb :]
        part = tail[rank::world_size]
        if len(part):
            yield part


def n_steps(n: int, batch_size: int, *, drop_last: bool = True, world_size: int = 1) -> int:
    """Number of batches :func:`shuffled_batches` yields per process (at most)."""
    gb = batch_size * world_size
    return n // gb + (0 if drop_last or n % gb == 0 else 1)
