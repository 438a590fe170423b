"""The evaluate stage's accuracy-vs-time curve (issue 13): only for drifting devices."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from crossnas.config.hardware import HardwareConfig
from crossnas.config.run import EvaluateConfig
from crossnas.pipeline.stages import accuracy_vs_time, device_drifts
from crossnas.quant import QuantConv2d, QuantLinear


def test_only_drifting_devices_get_a_curve_and_times_are_checked() -> None:
    assert not device_drifts(HardwareConfig())  # the default RRAM run costs nothing extra
    assert not device_drifts(HardwareConfig().with_updates(device={"type": "SRAM"}))
    assert device_drifts(HardwareConfig().with_updates(device={"type": "PCM"}))
    assert device_drifts(HardwareConfig().with_updates(device={"drift_nu": 0.01}))
    assert EvaluateConfig(drift_times_s=(86400, 60, 60)).drift_times_s == (60.0, 86400.0)
    with pytest.raises(ValidationError, match="drift_times_s"):
        EvaluateConfig(drift_times_s=(-1.0,))


def test_accuracy_vs_time_scores_each_time_with_and_without_compensation() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(QuantConv2d(1, 6, 3, padding=1, w_bits=5, a_bits=6, signed_input=True), nn.ReLU(),
                        nn.Flatten(), QuantLinear(6 * 64, 10, w_bits=6, a_bits=6))
    net.train()
    with torch.no_grad():
        net(torch.randn(32, 1, 8, 8))
    net.eval().requires_grad_(False)
    x = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = net(x).argmax(1)
    hw = HardwareConfig().with_updates(device={"type": "PCM"})
    out = accuracy_vs_time(net, hw, x, y, (60.0, 31536000.0), mc_runs=2, seed=0, batch_size=64, calibration_x=x)
    assert out["times_s"] == [60.0, 31536000.0] and out["mc_runs"] == 2
    for key in ("compensated", "uncompensated"):
        assert len(out[key]) == 2 and all(0 <= p["mean"] <= 1 and p["std"] >= 0 for p in out[key])
