"""ADC model: a uniform quantizer whose step is a power of two (in cell-level units).

A ``b``-bit ADC with full scale ``FS`` (the largest partial sum it must represent,
in units of one cell level times one DAC level) uses the smallest power of two
strictly above ``FS``, ``2**n`` with ``n = floor(log2 FS) + 1``, and reads

    code = clamp(round(ps / step), 0, 2**b - 1),  step = 2**(n - b),  value = code * step.

So an integer partial sum ``<= FS`` is read exactly as soon as ``b >= n`` (step <= 1),
and the grid of ``b`` bits is a subset of the grid of ``b + 1`` bits (nested grids:
every partial sum is read at least as accurately with one more bit). Where ``FS``
comes from is the range rule (see :mod:`crossnas.pimsim.layers`).
"""

from __future__ import annotations

import math

import torch


def adc_exponent(full_scale: float) -> int:
    """``n`` with ``2**(n-1) <= full_scale < 2**n`` (``full_scale <= 0`` counts as 1)."""
    fs = float(full_scale)
    if not fs > 0 or not math.isfinite(fs):
        fs = 1.0
    return math.floor(math.log2(fs)) + 1


def adc_step(full_scale: float, bits: int) -> float:
    """Quantization step (a power of two) of a ``bits``-bit ADC covering ``full_scale``."""
    return math.ldexp(1.0, adc_exponent(full_scale) - bits)


def adc_read_(ps: torch.Tensor, step: float, bits: int) -> torch.Tensor:
    """Reads non-negative partial sums through the ADC, in place, returning codes.

    Args:
        ps: partial sums (any shape), ``>= 0``; overwritten.
        step: quantization step (power of two).
        bits: ADC resolution.

    Returns:
        ``ps`` holding the integer codes ``0 .. 2**bits - 1`` (multiply by ``step``
        for the value).
    """
    # step is a power of two, so multiplying by its inverse is exact.
    return ps.mul_(1.0 / step).round_().clamp_(max=float((1 << bits) - 1))
