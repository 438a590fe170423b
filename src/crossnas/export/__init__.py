"""Exports of a model directory: standalone PyTorch, ONNX, MNSIM inputs."""

from __future__ import annotations

from crossnas.export.mnsim import hardware_to_mnsim_ini, network_to_mnsim
from crossnas.export.pytorch import export_pytorch, standalone_source

__all__ = ["export_pytorch", "hardware_to_mnsim_ini", "network_to_mnsim", "standalone_source"]
