"""PIM accuracy simulator: quantized networks on simulated analog crossbars.

``simulate_model(module, hardware, seed=...)`` replaces every ``QuantConv2d`` /
``QuantLinear`` with a crossbar-simulated layer (bit-sliced weights on cells,
positive/negative arrays or offset encoding, row tiles of the crossbar size read
``subarray_rows`` at a time, bit-serial inputs through the DAC, per-column partial
sums through the ADC, digital shift-add; conductance variation, programming noise
relative to G_max or PCM's state-dependent model, clipping, stuck-at faults, finite
on/off ratio, drift at ``device.time_s`` with global drift compensation, per-read noise).
``pim_accuracy`` gives the Monte-Carlo mean ± std accuracy. With
``ideal_hardware(hw)`` the simulated network reproduces the fake-quantized one
exactly. Model and conventions: ``docs/pim_simulator.md``.
"""

from __future__ import annotations

from crossnas.pimsim.adc import adc_exponent, adc_read_, adc_step
from crossnas.pimsim.layers import PimConv2d, PimLayer, PimLinear
from crossnas.pimsim.mapping import (
    LayerPlan,
    LayerStreams,
    program_cells,
    read_time_conductances,
    sample_conductances,
    weight_levels,
)
from crossnas.pimsim.settings import CrossbarSpec, PimSimSettings
from crossnas.pimsim.simulate import (
    PimResult,
    ideal_hardware,
    pim_accuracy,
    pim_layers,
    run_seed,
    simulate_model,
)

__all__ = [
    "CrossbarSpec",
    "LayerPlan",
    "LayerStreams",
    "PimConv2d",
    "PimLayer",
    "PimLinear",
    "PimResult",
    "PimSimSettings",
    "adc_exponent",
    "adc_read_",
    "adc_step",
    "ideal_hardware",
    "pim_accuracy",
    "pim_layers",
    "program_cells",
    "read_time_conductances",
    "run_seed",
    "sample_conductances",
    "simulate_model",
    "weight_levels",
]
