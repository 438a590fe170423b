"""PIM hardware cost model calibrated to MNSIM-2.0.

Public API::

    from crossnas.hw import network_from_dict, cost_networks, cost_network
    batch = cost_networks([net_dict, ...], HardwareConfig())
    batch.latency_ms, batch.energy_mJ, batch.edp_mJms, batch.area_mm2, batch.power_W
    batch.report(0)  # totals + per-layer + per-component, JSON-able
"""

from __future__ import annotations

from crossnas.hw.cost import CostBatch, cost_network, cost_networks
from crossnas.hw.network import (
    Layer,
    Network,
    network_from_dict,
    network_from_module,
    network_to_dict,
)

__all__ = [
    "CostBatch",
    "Layer",
    "Network",
    "cost_network",
    "cost_networks",
    "network_from_dict",
    "network_from_module",
    "network_to_dict",
]
