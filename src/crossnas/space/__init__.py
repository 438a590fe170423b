"""The architecture spec (one candidate network + its bits) and its encodings."""

from __future__ import annotations

from crossnas.space.arch import (
    ArchSpec,
    LayerSpec,
    epitome_wraps,
    genes_per_layer,
    max_pools,
    random_arch,
)
from crossnas.space.mnsim import arch_to_network_dict

__all__ = [
    "ArchSpec", "LayerSpec", "arch_to_network_dict", "epitome_wraps", "genes_per_layer", "max_pools", "random_arch",
]
