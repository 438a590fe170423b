"""``ArchSpec``: a frozen, hashable candidate network with per-layer bits.

String form, one token per choice layer joined by ``-``:
``V64w7a5`` (vgg, 64 wide, 7-bit weights, 5-bit activations), ``v`` = vgg_nopool,
``R`` = residual, ``S`` = skip (no width or bits). Example: ``V32w9a9-S-R64w5a7``.
A block stored as epitomes (EPIM) carries its wrap factor as a suffix, ``V64w7a5e2``; a
dense block (``m = 1``) has none (``...e1`` parses, and prints without it). An output wrap
that differs from ``m`` follows as ``o``: ``V64w7a5e4o2`` (inputs wrapped 4 times, outputs 2;
``space.epitome_out_max`` makes the search produce these).

Integer vector (for search operators): per layer ``[block, width, w_bits, a_bits]`` as
indices into the space's choice lists, plus ``epitome`` when the space has epitome
choices (:func:`genes_per_layer`: 4, or 5 with ``space.epitome`` other than ``(1,)``); a
skip layer's other genes are ignored (canonically 0).

Validity: at least one non-skip layer; the number of ``vgg`` (pooling) blocks must
leave a feature map at least ``head.pool`` wide. A ``skip`` is the identity, so the
layer after it sees the width of the last non-skip layer before it (the input
channels if there is none).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError

_CODE = {"vgg": "V", "vgg_nopool": "v", "residual": "R", "skip": "S"}
_NAME = {v: k for k, v in _CODE.items()}
_TOKEN = re.compile(r"^([VvR])(\d+)w(\d+)a(\d+)(?:e(\d+)(?:o(\d+))?)?$")
BASE_GENES = 4
"""Genes of every choice layer: block, width, w_bits, a_bits (then epitome, if searched)."""
EPITOME_GENE = 4
"""Index of the epitome gene within a layer's genes (present when :func:`genes_per_layer` is 5)."""


def genes_per_layer(space: SpaceConfig) -> int:
    """Genes per choice layer: 4, plus the epitome gene when ``space.searches_epitome``."""
    return BASE_GENES + int(space.searches_epitome)


def epitome_wraps(m: int, c_in: int, c_out: int, m_out: int | None = None) -> tuple[int, int]:
    """``(out_wrap, in_wrap)`` of one conv of a block with epitome gene ``m``.

    Both wraps are ``m`` (the output wrap ``m_out`` when given), each clamped to the conv's
    channels (a wrap cannot exceed them: a 1-channel image input stays unwrapped, a
    3-channel one wraps at most 3 times).
    """
    return min(m if m_out is None else m_out, c_out), min(m, c_in)


def capped_out_wrap(m: int, space: SpaceConfig) -> int | None:
    """The output wrap a block with gene ``m`` gets in ``space`` (``None``: the same as ``m``)."""
    cap = space.epitome_out_max
    return None if cap is None or cap >= m else cap


@dataclass(frozen=True)
class LayerSpec:
    """One choice layer. For ``skip``, width and bits are 0 (and ``epitome`` 1).

    ``epitome``: the wrap factor ``m`` of the block's convs (1 = dense;
    :func:`epitome_wraps` gives each conv's wraps). ``epitome_out``: their output wrap when
    it differs from ``m`` (``None``: the same; a value equal to ``m`` is stored as ``None``).
    """

    block: str
    width: int = 0
    w_bits: int = 0
    a_bits: int = 0
    epitome: int = 1
    epitome_out: int | None = None

    def __post_init__(self) -> None:
        if self.epitome_out == self.epitome:
            object.__setattr__(self, "epitome_out", None)

    @property
    def wrapped(self) -> bool:
        """Whether the block is stored as epitomes (an input or an output wrap above 1)."""
        return self.epitome != 1 or self.epitome_out is not None

    def wraps(self, c_in: int, c_out: int) -> tuple[int, int]:
        """``(out_wrap, in_wrap)`` of one of this block's convs (:func:`epitome_wraps`)."""
        return epitome_wraps(self.epitome, c_in, c_out, self.epitome_out)

    def to_token(self) -> str:
        if self.block == "skip":
            return "S"
        tail = f"e{self.epitome}" if self.wrapped else ""
        if self.epitome_out is not None:
            tail += f"o{self.epitome_out}"
        return f"{_CODE[self.block]}{self.width}w{self.w_bits}a{self.a_bits}{tail}"


@dataclass(frozen=True)
class ArchSpec:
    """A candidate: one :class:`LayerSpec` per choice layer."""

    layers: tuple[LayerSpec, ...]

    # ---- forms -------------------------------------------------------------------
    def __str__(self) -> str:
        return "-".join(layer.to_token() for layer in self.layers)

    @classmethod
    def from_string(cls, text: str) -> ArchSpec:
        """Parses the short string form (see module docstring)."""
        layers = []
        for tok in text.strip().split("-"):
            tok = tok.strip()
            if tok == "S":
                layers.append(LayerSpec("skip"))
                continue
            m = _TOKEN.match(tok)
            if not m:
                raise CrossnasError(
                    f"arch {text!r}: bad token {tok!r}; expected e.g. V64w7a5 (V=vgg, v=vgg_nopool, R=residual; "
                    "an epitome wrap factor as a suffix: V64w7a5e2, with an output wrap: V64w7a5e4o2) or S (skip)"
                )
            epi = int(m.group(5)) if m.group(5) is not None else 1
            epi_out = int(m.group(6)) if m.group(6) is not None else None
            if epi < 1 or (epi_out is not None and epi_out < 1):
                raise CrossnasError(f"arch {text!r}: token {tok!r}: the epitome wrap factors must be >= 1")
            layers.append(LayerSpec(_NAME[m.group(1)], int(m.group(2)), int(m.group(3)), int(m.group(4)), epi,
                                    epi_out))
        return cls(tuple(layers))

    def to_json(self) -> list[dict[str, object]]:
        """One object per layer; ``epitome`` only for epitome blocks (``m > 1``),
        ``epitome_out`` only where it differs from ``epitome``."""
        return [
            {"block": layer.block, "width": layer.width, "w_bits": layer.w_bits, "a_bits": layer.a_bits,
             **({"epitome": layer.epitome} if layer.wrapped else {}),
             **({"epitome_out": layer.epitome_out} if layer.epitome_out is not None else {})}
            for layer in self.layers
        ]

    @classmethod
    def from_json(cls, data: object) -> ArchSpec:
        if isinstance(data, str):
            return cls.from_string(data)
        if isinstance(data, dict) and "layers" in data:
            data = data["layers"]
        if not isinstance(data, list):
            raise CrossnasError("arch JSON must be a list of {block, width, w_bits, a_bits} or the string form")
        layers = []
        for i, d in enumerate(data):
            if not isinstance(d, dict) or "block" not in d:
                raise CrossnasError(f"arch layer {i}: expected an object with 'block'")
            if d["block"] == "skip":
                layers.append(LayerSpec("skip"))
            else:
                try:
                    epi = int(d.get("epitome", 1))
                    epi_out = int(d["epitome_out"]) if d.get("epitome_out") is not None else None
                    layers.append(LayerSpec(str(d["block"]), int(d["width"]), int(d["w_bits"]), int(d["a_bits"]), epi,
                                            epi_out))
                except (KeyError, TypeError, ValueError) as exc:
                    raise CrossnasError(
                        f"arch layer {i}: needs integer width, w_bits, a_bits (and epitome, epitome_out)") from exc
        return cls(tuple(layers))

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    # ---- integer vector ------------------------------------------------------------
    def encode(self, space: SpaceConfig) -> np.ndarray:
        """Integer vector of shape ``(genes_per_layer(space) * n_layers,)`` (indices into the choice lists)."""
        self.validate(space)
        g = genes_per_layer(space)
        out = np.zeros((len(self.layers), g), dtype=np.int64)
        for i, layer in enumerate(self.layers):
            out[i, 0] = space.blocks.index(layer.block)
            if layer.block != "skip":
                out[i, 1] = space.widths.index(layer.width)
                out[i, 2] = space.w_bits.index(layer.w_bits)
                out[i, 3] = space.a_bits.index(layer.a_bits)
                if g > BASE_GENES:
                    out[i, EPITOME_GENE] = space.epitome.index(layer.epitome)
        return out.reshape(-1)

    @classmethod
    def decode(cls, vec: Sequence[int] | np.ndarray, space: SpaceConfig) -> ArchSpec:
        """Inverse of :meth:`encode`; skip layers ignore their other genes."""
        arr = np.asarray(vec, dtype=np.int64).reshape(-1)
        g = genes_per_layer(space)
        if arr.size != g * space.n_layers:
            raise CrossnasError(f"arch vector has {arr.size} genes, the space needs {g * space.n_layers}")
        layers = []
        for i in range(space.n_layers):
            genes = [int(x) for x in arr[g * i : g * i + g]]
            b = genes[0]
            if not 0 <= b < len(space.blocks):
                raise CrossnasError(f"arch vector gene {g * i}: block index {b} out of range")
            name = space.blocks[b]
            if name == "skip":
                layers.append(LayerSpec("skip"))
                continue
            lists = (space.widths, space.w_bits, space.a_bits, space.epitome)[: g - 1]
            for j, (idx, choices) in enumerate(zip(genes[1:], lists, strict=True)):
                if not 0 <= idx < len(choices):
                    raise CrossnasError(f"arch vector gene {g * i + 1 + j}: index {idx} out of range")
            epi = space.epitome[genes[EPITOME_GENE]] if g > BASE_GENES else space.epitome[0]
            layers.append(LayerSpec(name, space.widths[genes[1]], space.w_bits[genes[2]], space.a_bits[genes[3]], epi,
                                    capped_out_wrap(epi, space)))
        return cls(tuple(layers))

    @staticmethod
    def gene_cardinalities(space: SpaceConfig) -> np.ndarray:
        """Number of choices of each gene, shape ``(genes_per_layer(space) * n_layers,)``."""
        one = [len(space.blocks), len(space.widths), len(space.w_bits), len(space.a_bits), len(space.epitome)]
        return np.array(one[: genes_per_layer(space)] * space.n_layers, dtype=np.int64)

    # ---- validity ------------------------------------------------------------------
    def problems(self, space: SpaceConfig, input_hw: int | None = None) -> list[str]:
        """Reasons this spec is not a valid member of ``space`` (empty if valid)."""
        out: list[str] = []
        if len(self.layers) != space.n_layers:
            out.append(f"has {len(self.layers)} layers, the space has {space.n_layers}")
        for i, layer in enumerate(self.layers):
            if layer.block not in space.blocks:
                out.append(f"layer {i}: block {layer.block!r} not in {list(space.blocks)}")
                continue
            if layer.block == "skip":
                continue
            if layer.width not in space.widths:
                out.append(f"layer {i}: width {layer.width} not in {list(space.widths)}")
            if layer.w_bits not in space.w_bits:
                out.append(f"layer {i}: w_bits {layer.w_bits} not in {list(space.w_bits)}")
            if layer.a_bits not in space.a_bits:
                out.append(f"layer {i}: a_bits {layer.a_bits} not in {list(space.a_bits)}")
            if layer.epitome not in space.epitome:
                out.append(f"layer {i}: epitome {layer.epitome} not in {list(space.epitome)}")
            elif layer.epitome_out != capped_out_wrap(layer.epitome, space):
                want = capped_out_wrap(layer.epitome, space) or layer.epitome
                out.append(f"layer {i}: output wrap {layer.epitome_out or layer.epitome} of epitome {layer.epitome}: "
                           f"the space gives {want} (space.epitome_out_max: {space.epitome_out_max})")
        if all(layer.block == "skip" for layer in self.layers):
            out.append("needs at least one non-skip layer")
        if input_hw is not None and self.n_pools > max_pools(input_hw, space.head.pool):
            out.append(
                f"{self.n_pools} pooling blocks shrink a {input_hw}x{input_hw} input below the "
                f"{space.head.pool}x{space.head.pool} head (at most {max_pools(input_hw, space.head.pool)})"
            )
        return out

    def validate(self, space: SpaceConfig, input_hw: int | None = None) -> ArchSpec:
        """Raises :class:`CrossnasError` if invalid; returns ``self``."""
        probs = self.problems(space, input_hw)
        if probs:
            raise CrossnasError(f"arch {self}: " + "; ".join(probs))
        return self

    def is_valid(self, space: SpaceConfig, input_hw: int | None = None) -> bool:
        return not self.problems(space, input_hw)

    # ---- derived -----------------------------------------------------------------------
    @property
    def n_pools(self) -> int:
        return sum(1 for layer in self.layers if layer.block == "vgg")

    def effective_widths(self, in_channels: int) -> list[int]:
        """Output channels after each layer (a skip keeps the previous width)."""
        out, cur = [], in_channels
        for layer in self.layers:
            if layer.block != "skip":
                cur = layer.width
            out.append(cur)
        return out


def max_pools(input_hw: int, head_pool: int) -> int:
    """Most 2x2 pooling blocks an ``input_hw`` map allows before a ``head_pool`` head."""
    if input_hw < head_pool:
        return 0
    return int(math.floor(math.log2(input_hw / head_pool) + 1e-9))


def random_arch(space: SpaceConfig, rng: np.random.Generator, input_hw: int | None = None) -> ArchSpec:
    """A uniformly sampled valid spec (rejection sampling over the integer vector)."""
    card = ArchSpec.gene_cardinalities(space)
    for _ in range(10_000):
        spec = ArchSpec.decode(rng.integers(0, card), space)
        if spec.is_valid(space, input_hw):
            return spec
    raise CrossnasError("could not sample a valid architecture in 10,000 tries; check the space config")
