"""The joint genome: network genes, quantization genes and hardware genes.

A genome is an integer vector of shape ``(g * n_layers + n_hw,)``: per choice layer
``[block, width, w_bits, a_bits]`` as indices into the space's choice lists, plus
``epitome`` when the space searches epitomes (``g`` = 4 or 5,
:func:`crossnas.space.arch.genes_per_layer`; the layout of :meth:`ArchSpec.encode`),
then one index per searched hardware gene (in config order).
Genomes are canonical: a skip layer's width and bit genes are 0, so two vectors that
describe the same network and hardware are equal, and so are their keys.

The key (``"V64w7a5-S-...|crossbar.size=128,adc.choice=3,dac.choice=1"``) identifies a
candidate everywhere: in the evaluation cache, in the stored trials, across workers.

A :class:`GenomeSpace` may freeze some genes (baselines search a subset): frozen genes
keep the template's value and are never sampled, mutated or crossed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import apply_hardware_genes
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.space.arch import BASE_GENES, ArchSpec, genes_per_layer, max_pools
from crossnas.space.mnsim import arch_to_network_dict

GENES_PER_LAYER = BASE_GENES
"""Genes of every layer without epitomes (``GenomeSpace.genes_per_layer`` is the space's count)."""
_BLOCK, _WIDTH, _WBITS, _ABITS = range(4)


@dataclass(frozen=True)
class Candidate:
    """One point of the joint space: a network with its bits, on one accelerator."""

    key: str
    spec: ArchSpec
    hardware: HardwareConfig
    hw_genes: tuple[tuple[str, Any], ...]
    """``((dotted path, value), ...)`` of the searched hardware genes."""

    @property
    def arch(self) -> str:
        return str(self.spec)

    def hw_genes_dict(self) -> dict[str, Any]:
        return dict(self.hw_genes)


class GenomeSpace:
    """Decodes, samples, mutates and crosses genomes of one search space.

    Args:
        space: the network/quantization space.
        base_hardware: the fixed hardware (every field not searched).
        hardware_genes: ``{dotted path: choices}`` of the searched hardware fields.
        input_shape: ``(C, H, W)`` of one input (validity: pooling depth).
        n_classes: classifier outputs (the cost model's last FC).
        search_bits: ``False`` freezes every bit gene at the largest choice.
        frozen: extra ``{gene index: value index}`` to freeze (baselines).
    """

    def __init__(
        self,
        space: SpaceConfig,
        base_hardware: HardwareConfig,
        hardware_genes: Mapping[str, Sequence[Any]],
        input_shape: tuple[int, int, int],
        n_classes: int,
        *,
        search_bits: bool = True,
        frozen: Mapping[int, int] | None = None,
    ) -> None:
        self.space = space
        self.base_hardware = base_hardware
        self.hw_paths: tuple[str, ...] = tuple(hardware_genes)
        self.hw_choices: tuple[tuple[Any, ...], ...] = tuple(tuple(c) for c in hardware_genes.values())
        self.input_shape = tuple(int(x) for x in input_shape)
        self.n_classes = int(n_classes)
        self.input_hw = int(self.input_shape[1])
        self.n_layers = space.n_layers
        self.genes_per_layer = genes_per_layer(space)
        self.n_arch = self.genes_per_layer * space.n_layers
        self.cardinalities = np.concatenate(
            [ArchSpec.gene_cardinalities(space), np.array([len(c) for c in self.hw_choices], dtype=np.int64)]
        ).astype(np.int64)
        self.n_genes = int(self.cardinalities.size)
        self.template = np.zeros(self.n_genes, dtype=np.int64)
        self.free = np.ones(self.n_genes, dtype=bool)
        if not search_bits:
            for i in range(self.n_layers):
                for g, choices in ((_WBITS, space.w_bits), (_ABITS, space.a_bits)):
                    self.template[self.genes_per_layer * i + g] = len(choices) - 1
                    self.free[self.genes_per_layer * i + g] = False
        for idx, val in (frozen or {}).items():
            if not 0 <= idx < self.n_genes or not 0 <= val < self.cardinalities[idx]:
                raise CrossnasError(f"frozen gene {idx}={val} is outside the genome")
            self.template[idx] = val
            self.free[idx] = False
        self._max_pools = max_pools(self.input_hw, space.head.pool)
        self._hw_cache: dict[tuple[int, ...], HardwareConfig | None] = {}
        self._hw_errors: dict[tuple[int, ...], str] = {}
        self._net_cache: dict[str, dict[str, Any]] = {}
        self._keys: dict[bytes, str] = {}
        self._cands: dict[str, Candidate] = {}
        self._vecs: dict[str, np.ndarray] = {}
        self._hw_index: list[dict[str, int]] = [{repr(v): j for j, v in enumerate(c)} for c in self.hw_choices]

    # ---- names -------------------------------------------------------------------------
    def gene_names(self) -> list[str]:
        """One name per gene: ``L0.block, L0.width, L0.w_bits, L0.a_bits[, L0.epitome], ..., hw.<path>``."""
        kinds = ("block", "width", "w_bits", "a_bits", "epitome")[: self.genes_per_layer]
        out = [f"L{i}.{k}" for i in range(self.n_layers) for k in kinds]
        return out + [f"hw.{p}" for p in self.hw_paths]

    def gene_choices(self) -> list[tuple[Any, ...]]:
        """The value list of every gene (same order as :meth:`gene_names`)."""
        s = self.space
        one = [s.blocks, s.widths, s.w_bits, s.a_bits, s.epitome][: self.genes_per_layer]
        return [tuple(c) for _ in range(self.n_layers) for c in one] + list(self.hw_choices)

    # ---- canonical form and keys ------------------------------------------------------------
    def canonical(self, vec: np.ndarray) -> np.ndarray:
        """Frozen genes from the template, skip layers' other genes zeroed."""
        v = np.where(self.free, np.asarray(vec, dtype=np.int64), self.template)
        arch = v[: self.n_arch].reshape(self.n_layers, self.genes_per_layer)
        skip_idx = self.space.blocks.index("skip") if "skip" in self.space.blocks else -1
        if skip_idx >= 0:
            arch[arch[:, _BLOCK] == skip_idx, 1:] = 0
        return v

    def spec_of(self, vec: np.ndarray) -> ArchSpec:
        return ArchSpec.decode(np.asarray(vec)[: self.n_arch], self.space)

    def hw_values(self, vec: np.ndarray) -> tuple[tuple[str, Any], ...]:
        hw = np.asarray(vec)[self.n_arch :]
        return tuple((p, self.hw_choices[j][int(hw[j])]) for j, p in enumerate(self.hw_paths))

    def key(self, vec: np.ndarray) -> str:
        """Canonical key string of a (canonical) genome."""
        raw = np.asarray(vec, dtype=np.int64).tobytes()
        key = self._keys.get(raw)
        if key is None:
            hw = ",".join(f"{p}={v}" for p, v in self.hw_values(vec))
            key = self._keys[raw] = f"{self.spec_of(vec)}|{hw}"
        return key

    def vec_of_key(self, key: str) -> np.ndarray:
        """Inverse of :meth:`key` (the genome vector, canonical; a fresh copy)."""
        vec = self._vecs.get(key)
        if vec is None:
            vec = self._vecs[key] = self._parse_key(key)
        return vec.copy()

    def _parse_key(self, key: str) -> np.ndarray:
        arch, _, hw = key.partition("|")
        spec = ArchSpec.from_string(arch)
        vec = np.zeros(self.n_genes, dtype=np.int64)
        vec[: self.n_arch] = spec.encode(self.space)
        values = dict(item.split("=", 1) for item in hw.split(",")) if hw else {}
        for j, path in enumerate(self.hw_paths):
            if path not in values:
                raise CrossnasError(f"genome key {key!r} lacks hardware gene {path}")
            lookup = {str(v): i for i, v in enumerate(self.hw_choices[j])}
            if values[path] not in lookup:
                raise CrossnasError(f"genome key {key!r}: {path}={values[path]} is not a choice")
            vec[self.n_arch + j] = lookup[values[path]]
        return vec

    # ---- validity and decoding -------------------------------------------------------------
    def hardware_of(self, vec: np.ndarray) -> HardwareConfig | None:
        """The accelerator of a genome, or ``None`` if the gene combination is invalid."""
        hw_idx = tuple(int(x) for x in np.asarray(vec)[self.n_arch :])
        if hw_idx not in self._hw_cache:
            try:
                self._hw_cache[hw_idx] = apply_hardware_genes(self.base_hardware, dict(self.hw_values(vec)))
            except ValueError as exc:
                self._hw_cache[hw_idx] = None
                self._hw_errors[hw_idx] = str(exc).splitlines()[0]
        return self._hw_cache[hw_idx]

    def is_valid(self, vec: np.ndarray) -> bool:
        """Network rules (at least one non-skip layer, pooling depth) and valid hardware."""
        v = np.asarray(vec)
        blocks = v[: self.n_arch : self.genes_per_layer]
        names = self.space.blocks
        if all(names[b] == "skip" for b in blocks):
            return False
        if sum(1 for b in blocks if names[b] == "vgg") > self._max_pools:
            return False
        return self.hardware_of(v) is not None

    def candidate(self, vec: np.ndarray) -> Candidate:
        """Decodes a canonical, valid genome (cached by key)."""
        key = self.key(vec)
        cand = self._cands.get(key)
        if cand is None:
            hw = self.hardware_of(vec)
            if hw is None:
                raise CrossnasError(f"genome {key} has invalid hardware genes")
            cand = self._cands[key] = Candidate(key, self.spec_of(vec), hw, self.hw_values(vec))
        return cand

    def network_dict(self, spec: ArchSpec) -> dict[str, Any]:
        """MNSIM-style network description of ``spec`` (cached by arch string)."""
        s = str(spec)
        if s not in self._net_cache:
            self._net_cache[s] = arch_to_network_dict(spec, self.space, self.input_shape, self.n_classes)  # type: ignore[arg-type]
        return self._net_cache[s]

    # ---- operators ---------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly drawn genome (canonical; may be invalid: check :meth:`is_valid`)."""
        return self.canonical(rng.integers(0, self.cardinalities))

    def mutate(self, vec: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
        """Redraws each free gene uniformly with probability ``prob``."""
        draw = rng.random(self.n_genes) < prob
        new = rng.integers(0, self.cardinalities)
        return self.canonical(np.where(draw & self.free, new, vec))

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        pick = rng.random(self.n_genes) < 0.5
        return self.canonical(np.where(pick, a, b))

    def freeze(self, frozen: Mapping[int, int]) -> GenomeSpace:
        """A copy with more genes frozen (same layout, keys comparable)."""
        merged = {int(i): int(self.template[i]) for i in np.flatnonzero(~self.free)}
        merged.update(frozen)
        out = GenomeSpace(
            self.space, self.base_hardware, dict(zip(self.hw_paths, self.hw_choices, strict=True)),
            self.input_shape, self.n_classes, frozen=merged,  # type: ignore[arg-type]
        )
        return out

    def arch_gene_indices(self, which: Sequence[int]) -> list[int]:
        """Indices of per-layer gene kinds (0 block, 1 width, 2 w_bits, 3 a_bits, 4 epitome);
        a kind the genome does not have (epitome in a space without epitomes) has none."""
        g = self.genes_per_layer
        return [g * i + k for i in range(self.n_layers) for k in which if k < g]

    def hw_gene_indices(self) -> list[int]:
        return list(range(self.n_arch, self.n_genes))

    def base_hw_frozen(self) -> dict[int, int] | None:
        """Freezes hardware genes at the base hardware's values (``None`` if a base value is not a choice)."""
        out = {}
        base = self.base_hardware.model_dump()
        for j, path in enumerate(self.hw_paths):
            if path == "crossbar.size":
                cur: Any = base["crossbar"]["rows"] if base["crossbar"]["rows"] == base["crossbar"]["cols"] else None
            else:
                section, _, leaf = path.partition(".")
                cur = base[section][leaf] if leaf else base[section]
            idx = self._hw_index[j].get(repr(cur))
            if idx is None:
                return None
            out[self.n_arch + j] = idx
        return out
