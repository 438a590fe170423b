"""The IDX file format of MNIST and Fashion-MNIST, read and checked.

An IDX file is a big-endian header followed by the raw array::

    bytes 0-1   0x00 0x00
    byte  2     element type (0x08 = unsigned byte, the only one MNIST-style files use)
    byte  3     number of dimensions d
    4 * d bytes the size of each dimension (uint32, big-endian)
    then        prod(sizes) elements, row-major

so images (``N x 28 x 28`` bytes) have the magic number 2051 (``0x00000803``) and labels
(``N`` bytes) 2049 (``0x00000801``). The datasets ship each file gzip-compressed
(``train-images-idx3-ubyte.gz``); uncompressed files are read as well.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
"""Magic number of an unsigned-byte IDX file with 3 dimensions (images)."""
LABELS_MAGIC = 2049
"""Magic number of an unsigned-byte IDX file with 1 dimension (labels)."""


class IdxFormatError(ValueError):
    """A file that is not the IDX file it should be; the message is one short phrase."""


def read_file_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``.

    Raises:
        IdxFormatError: truncated or corrupt gzip data.
        OSError: the file cannot be read.
    """
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except EOFError:
        raise IdxFormatError("truncated gzip file (it ends before the end of the compressed stream)") from None
    except gzip.BadGzipFile:
        raise IdxFormatError("not a gzip file") from None
    except zlib.error as exc:
        raise IdxFormatError(f"corrupt gzip data ({exc})") from None


def parse_idx(raw: bytes, magic: int) -> np.ndarray:
    """Parses one unsigned-byte IDX file.

    Args:
        raw: the uncompressed file contents.
        magic: the magic number expected (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`).

    Returns:
        A uint8 array with the header's shape (read-only view of ``raw``).

    Raises:
        IdxFormatError: wrong magic number, a header or data that is too short, or data
            longer than the header's sizes.
    """
    kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
    if len(raw) < 4:
        raise IdxFormatError(f"{len(raw)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise IdxFormatError(f"wrong magic number {found} (expected {magic} for {kind})")
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise IdxFormatError(f"truncated header ({len(raw)} bytes, {head} needed for {ndim} sizes)")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    n = math.prod(dims)
    have = len(raw) - head
    shape = "x".join(str(d) for d in dims)
    if have < n:
        raise IdxFormatError(f"truncated: {have} data bytes, the header's sizes {shape} need {n}")
    if have > n:
        raise IdxFormatError(f"{have} data bytes, more than the header's sizes {shape} hold ({n})")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Reads and parses one IDX file (gzip-compressed when its name ends in ``.gz``).

    Raises:
        IdxFormatError: see :func:`read_file_bytes` and :func:`parse_idx`.
        OSError: the file cannot be read.
    """
    return parse_idx(read_file_bytes(path), magic)
