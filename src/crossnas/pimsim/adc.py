"""ADC model: a uniform quantizer whose step is a power of two (in cell-level units).

A ``b``-bit ADC with full scale ``FS`` (the largest partial sum it must represent,
in units of one cell level times one DAC level) covers ``[0, 2**n)`` with
``n = ceil(log2 FS)`` (the smallest power of two at or above ``FS``) and reads

    code = clamp(round(ps / step), 0, 2**b - 1),  step = 2**(n - b),  value = code * step.

All ``2**b`` codes are in use: the top code ``2**n - step`` lies within one step of
``FS``, and only a partial sum above ``2**n - step / 2`` clips (when ``FS`` is itself
a power of two, only the rare reads at the very top of the range: they read one step
low). So an integer partial sum ``< 2**n`` is read exactly as soon as ``b >= n``
(step <= 1), and the grid of ``b`` bits is a subset of the grid of ``b + 1`` bits
(nested grids: every partial sum is read at least as accurately with one more bit).
Where ``FS`` comes from is the range rule (see :mod:`crossnas.pimsim.layers`).
"""

from __future__ import annotations

import math

import torch


def adc_exponent(full_scale: float) -> int:
    """``n = ceil(log2 full_scale)``: ``2**(n-1) < full_scale <= 2**n`` (exact; a
    ``full_scale`` that is not a positive finite number counts as 1, ``n = 0``)."""
    fs = float(full_scale)
    if not fs > 0 or not math.isfinite(fs):
        return 0
    mantissa, exponent = math.frexp(fs)  # fs = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return exponent - 1 if mantissa == 0.5 else exponent


def adc_step(full_scale: float, bits: int) -> float:
    """Quantization step (a power of two) of a ``bits``-bit ADC covering ``full_scale``."""
    return math.ldexp(1.0, adc_exponent(full_scale) - bits)


def adc_read_(ps: torch.Tensor, step: float, bits: int) -> torch.Tensor:
    """Reads non-negative partial sums through the ADC, in place, returning codes.

    Args:
        ps: partial sums (any shape); overwritten.
        step: quantization step (power of two).
        bits: ADC resolution.

    Returns:
        ``ps`` holding the integer codes ``0 .. 2**bits - 1`` (multiply by ``step``
        for the value).
    """
    # step is a power of two, so multiplying by its inverse is exact.
    return ps.mul_(1.0 / step).round_().clamp_(0.0, float((1 << bits) - 1))
