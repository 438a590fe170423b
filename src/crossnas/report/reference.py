"""Published figures to show beside ours (CIFAR-10, from the CrossNAS paper's table)."""

from __future__ import annotations

from typing import Any

# Facts from the CrossNAS paper (GLSVLSI 2025), as listed in MISSION.md. None = not reported.
PAPER_ROWS: list[dict[str, Any]] = [
    {"method": "NACIM", "pim_accuracy": 0.739, "latency_ms": None, "edp_mJms": 1.55, "search_time_h": 59},
    {"method": "UAE", "pim_accuracy": 0.83, "latency_ms": None, "edp_mJms": None, "search_time_h": 154},
    {"method": "NAS4RRAM", "pim_accuracy": 0.844, "latency_ms": None, "edp_mJms": None, "search_time_h": 289},
    {"method": "Gibbon (acc. opt.)", "pim_accuracy": 0.892, "latency_ms": 3.44, "edp_mJms": 1.67, "search_time_h": 6},
    {"method": "Gibbon (EDP opt.)", "pim_accuracy": 0.834, "latency_ms": 1.99, "edp_mJms": 0.26, "search_time_h": 6},
    {"method": "CrossNAS (w_acc = 0.99)", "pim_accuracy": 0.9127, "latency_ms": 1.35, "edp_mJms": 0.28, "search_time_h": 6},
    {"method": "CrossNAS (w_acc = 0.8)", "pim_accuracy": 0.8809, "latency_ms": 0.577, "edp_mJms": 0.073, "search_time_h": 5},
]
