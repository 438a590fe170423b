"""Search-space configuration (the network and quantization part of the genome)."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

BLOCK_TYPES = ("vgg", "vgg_nopool", "residual", "skip")
"""Registered block types. ``vgg`` = conv3x3-BN-ReLU-conv3x3-BN-ReLU-maxpool2x2;
``vgg_nopool`` the same without the pool; ``residual`` = conv3x3-BN-ReLU-conv3x3-BN plus a
1x1 conv shortcut, sum, ReLU; ``skip`` = identity (keeps the previous width)."""


class HeadConfig(BaseModel):
    """Classifier head: adaptive pool to ``pool`` x ``pool``, FC layers, dropout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: int = Field(2, ge=1, le=16)
    fc: tuple[int, ...] = (200, 50)
    """Hidden FC sizes; a final FC to the number of classes is always added."""
    dropout: float = Field(0.2, ge=0, lt=1)
    w_bits: int | None = Field(None, ge=1, le=16)
    """Head weight bits; ``None`` = the largest weight-bit choice."""
    a_bits: int | None = Field(None, ge=1, le=16)
    """Head activation bits; ``None`` = the largest activation-bit choice."""

    @field_validator("fc")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(n <= 0 for n in v):
            raise ValueError(f"fc sizes must be positive, got {list(v)}")
        return v


class SpaceConfig(BaseModel):
    """The searchable network: choice layers, block types, widths, bits. Default = CrossNAS paper."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_layers: int = Field(8, ge=1, le=64)
    blocks: tuple[str, ...] = BLOCK_TYPES
    widths: tuple[int, ...] = (32, 64, 128)
    w_bits: tuple[int, ...] = (5, 7, 9)
    a_bits: tuple[int, ...] = (5, 7, 9)
    head: HeadConfig = HeadConfig()
    quantize: bool = True
    """Fake-quantize with the sampled bits during supernet training and scoring."""
    share_convs: bool = False
    """Supernet weight sharing across block types: ``vgg``, ``vgg_nopool`` and ``residual``
    at one position use the same two 3x3 convs (each type keeps its own BatchNorms, the
    residual its 1x1 shortcut). ``False``: one independent module per type and position
    (SPOS). Sharing lets a supernet with mixed block types learn on harder data
    (Fashion-MNIST, BENCHMARKS.md); subnets and static models are the same either way."""
    epitome: tuple[int, ...] = (1,)
    """Epitome (EPIM) wrap factors ``m`` a block may take, one gene per choice layer;
    ``(1,)`` (the default) = dense convolutions only, no gene. A block with ``m > 1`` stores
    each of its convs (the residual shortcut included) as an epitome wrapped ``m`` times
    along both outputs and inputs, each wrap clamped to that conv's channels
    (:func:`crossnas.space.arch.epitome_wraps`): ``out_wrap = min(m, C_out)``,
    ``in_wrap = min(m, C_in)``. Values 1..64, sorted, no repeats."""
    epitome_out_max: int | None = Field(None, ge=1, le=64)
    """Cap on the *output* wrap of an epitome block's convs: ``out_wrap = min(m, cap, C_out)``
    while ``in_wrap = min(m, C_in)`` (arch tokens then read ``e4o2``: in 4, out 2).
    ``None`` (the default): both wraps ``m``. Output wrapping shrinks a conv's crossbar
    columns only until its epitome's outputs fit one array's columns per weight slice
    (a 48-channel conv on 32-column arrays: ``out_wrap = 2``); beyond that it keeps fewer
    distinct filters for no fewer crossbars (it still halves the ADC conversions of each
    further factor). Needs ``epitome`` choices other than ``[1]``."""

    @field_validator("blocks")
    @classmethod
    def _known_blocks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"blocks must not be empty; allowed: {list(BLOCK_TYPES)}")
        for b in v:
            if b not in BLOCK_TYPES:
                raise ValueError(f"unknown block {b!r}; allowed: {list(BLOCK_TYPES)}")
        if len(set(v)) != len(v):
            raise ValueError("blocks must not repeat")
        if set(v) == {"skip"}:
            raise ValueError("blocks: at least one block type other than 'skip' is needed")
        return v

    @field_validator("widths", "w_bits", "a_bits", "epitome")
    @classmethod
    def _nonempty_sorted(cls, v: tuple[int, ...], info: object) -> tuple[int, ...]:
        name = getattr(info, "field_name", "choices")
        if not v:
            raise ValueError(f"{name} must not be empty")
        if len(set(v)) != len(v):
            raise ValueError(f"{name} must not repeat")
        limit = {"widths": (1, 4096), "epitome": (1, 64)}.get(name, (2, 16))
        for x in v:
            if not limit[0] <= x <= limit[1]:
                raise ValueError(f"{name} values must be in {limit[0]}..{limit[1]}, got {x}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _head_bits(self) -> SpaceConfig:
        return self

    @model_validator(mode="after")
    def _epitome_cap(self) -> SpaceConfig:
        if self.epitome_out_max is not None and self.epitome == (1,):
            raise ValueError("epitome_out_max needs epitome choices other than [1] (it caps their output wrap)")
        return self

    @model_serializer(mode="wrap")
    def _omit_dense_epitome(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumps leave out ``epitome`` and ``share_convs`` at their defaults, so the dump (and
        the stage hashes and model files built on it) of a space that uses neither is what it
        was before those fields."""
        out: dict[str, Any] = handler(self)
        if self.epitome == (1,):
            out.pop("epitome", None)
        if not self.share_convs:
            out.pop("share_convs", None)
        if self.epitome_out_max is None:
            out.pop("epitome_out_max", None)
        return out

    @property
    def searches_epitome(self) -> bool:
        """Whether the genome has an epitome gene per layer (``epitome`` is not ``(1,)``)."""
        return self.epitome != (1,)

    @property
    def max_width(self) -> int:
        return max(self.widths)

    @property
    def head_w_bits(self) -> int:
        return self.head.w_bits if self.head.w_bits is not None else max(self.w_bits)

    @property
    def head_a_bits(self) -> int:
        return self.head.a_bits if self.head.a_bits is not None else max(self.a_bits)
