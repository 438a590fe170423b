"""Mapping integer weights onto crossbar cells, inputs onto DAC cycles, and devices.

Conventions (all integers are carried in float tensors):

* **Weights** ``w_int`` in ``[-q, q]``, ``q = 2**(w_bits-1) - 1`` (the shared quantizer).
  Polarity 2: two arrays, ``u+ = max(w, 0)`` (sign +1) and ``u- = max(-w, 0)``
  (sign -1), magnitudes of ``w_bits - 1`` bits. Polarity 1 (offset encoding): one
  array ``u = w + q`` in ``[0, 2q]`` (``w_bits`` bits), and the digital side subtracts
  ``q * sum(x)`` (the input row sum, known digitally) from the result.
* **Cell slices**: ``u = sum_s 2**(cell_bits*s) * level_s``, ``level_s`` in
  ``[0, levels-1]``, slice 0 least significant; ``n_slices = ceil(bits / cell_bits)``.
  Column coefficient of (array a, slice s): ``beta = sign_a * 2**(cell_bits*s)``.
* **Inputs** ``x_int``: unsigned ``a_bits`` (after ReLU) are applied in
  ``n_cycles = ceil(a_bits / dac_bits)`` cycles, digit ``d_c`` in
  ``[0, 2**dac_bits - 1]`` with weight ``2**(dac_bits*c)``. Signed inputs (the network
  input) are split into ``x+ = max(x, 0)`` and ``x- = max(-x, 0)`` (``a_bits - 1``
  magnitude bits each) applied in two passes, the second subtracted digitally. Cycle
  coefficient: ``gamma = sign_pass * 2**(dac_bits*c)``.
* **Conductance** in units of one level step ``dG = (G_max - G_min)/(levels - 1)``
  (``G_max = 1/LRS``, ``G_min = 1/HRS``): a cell at level ``l`` conducts
  ``g = g_min + l`` with ``g_min = (levels-1)/(HRS/LRS - 1)`` (0 for an infinite on/off
  ratio). The read-out subtracts the nominal offset ``g_min * sum(d)`` digitally, so
  with nominal devices the offset cancels exactly. Faults: a cell stuck at HRS reads
  level 0 (``g_min``), at LRS level ``levels-1``. Variation: ``g * (1 + sigma * N(0,1))``,
  clamped at 0 (a conductance cannot be negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from crossnas.pimsim.settings import CrossbarSpec
from crossnas.quant import act_qmax, weight_qmax


@dataclass(frozen=True)
class LayerPlan:
    """How one conv/linear layer is laid out on crossbars (all sizes are counts).

    Attributes:
        k: reduction size (``C_in * kh * kw`` or ``in_features``) = rows used.
        n: outputs (``C_out``).
        w_bits, a_bits: the layer's bits; ``signed``: whether its input is signed.
        array_signs: sign of each array (``(1, -1)`` polarity 2, ``(1,)`` polarity 1).
        weight_offset: the offset ``q`` of polarity-1 encoding (0 for polarity 2).
        n_slices: cell slices per weight.
        pass_signs: sign of each input pass (``(1,)`` unsigned, ``(1, -1)`` signed).
        n_cycles: DAC cycles per pass.
        n_blocks: row blocks (crossbars along the reduction dimension).
        rows: rows per crossbar.
        col_blocks: crossbars along the outputs, per array (``ceil(n*n_slices/cols)``).
    """

    k: int
    n: int
    w_bits: int
    a_bits: int
    signed: bool
    array_signs: tuple[int, ...]
    weight_offset: int
    n_slices: int
    cell_bits: int
    pass_signs: tuple[int, ...]
    n_cycles: int
    dac_bits: int
    n_blocks: int
    rows: int
    col_blocks: int

    @classmethod
    def build(
        cls, k: int, n: int, w_bits: int, a_bits: int, signed: bool, spec: CrossbarSpec
    ) -> LayerPlan:
        q = weight_qmax(w_bits)
        if spec.polarity == 2:
            signs: tuple[int, ...] = (1, -1)
            offset = 0
            mag = max(1, q.bit_length())
        else:
            signs = (1,)
            offset = q
            mag = max(1, (2 * q).bit_length())
        n_slices = math.ceil(mag / spec.cell_bits)
        a_mag = max(1, act_qmax(a_bits, signed).bit_length())
        return cls(
            k=k,
            n=n,
            w_bits=w_bits,
            a_bits=a_bits,
            signed=signed,
            array_signs=signs,
            weight_offset=offset,
            n_slices=n_slices,
            cell_bits=spec.cell_bits,
            pass_signs=(1, -1) if signed else (1,),
            n_cycles=math.ceil(a_mag / spec.dac_bits),
            dac_bits=spec.dac_bits,
            n_blocks=math.ceil(k / spec.rows),
            rows=spec.rows,
            col_blocks=math.ceil(n * n_slices / spec.cols),
        )

    @property
    def n_arrays(self) -> int:
        return len(self.array_signs)

    @property
    def n_columns(self) -> int:
        """Simulated columns per row block: arrays x slices x outputs."""
        return self.n_arrays * self.n_slices * self.n

    @property
    def n_input_cycles(self) -> int:
        """Cycles over both passes."""
        return len(self.pass_signs) * self.n_cycles

    @property
    def floor_matmuls(self) -> int:
        """The arithmetic floor: layer-sized matmuls per (input cycle x slice x array)."""
        return self.n_input_cycles * self.n_slices * self.n_arrays

    def column_coefficients(self) -> torch.Tensor:
        """``beta``, shape ``(n_arrays * n_slices,)``, order (array, slice)."""
        return torch.tensor(
            [
                sgn * float(1 << (self.cell_bits * s))
                for sgn in self.array_signs
                for s in range(self.n_slices)
            ],
            dtype=torch.float64,
        )

    def cycle_coefficients(self) -> torch.Tensor:
        """``gamma``, shape ``(n_input_cycles,)``, order (pass, cycle)."""
        return torch.tensor(
            [
                sgn * float(1 << (self.dac_bits * c))
                for sgn in self.pass_signs
                for c in range(self.n_cycles)
            ],
            dtype=torch.float64,
        )


def weight_levels(w_int: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """Cell levels of an integer weight matrix.

    Args:
        w_int: integer weights, shape ``(n, k)``.
        plan: the layer plan.

    Returns:
        Levels, float, shape ``(k, n_arrays, n_slices, n)``, each in ``[0, levels-1]``.
    """
    w = w_int.detach().to(torch.float64).t()  # (k, n)
    arrays = [w.clamp(min=0), (-w).clamp(min=0)] if plan.n_arrays == 2 else [w + plan.weight_offset]
    base = float(1 << plan.cell_bits)
    out = torch.empty((plan.k, plan.n_arrays, plan.n_slices, plan.n), dtype=torch.float64)
    for a, u in enumerate(arrays):
        for s in range(plan.n_slices):
            out[:, a, s, :] = torch.remainder(
                torch.floor(u / float(1 << (plan.cell_bits * s))), base
            )
    return out.to(torch.float32)


def layer_generator(seed: int, index: int) -> torch.Generator:
    """An independent random stream for layer ``index`` of a run with ``seed``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, index))
    return g


def derive_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for stream ``index`` of ``seed`` (``seed >= 0``)."""
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, int(index)]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & 0x7FFFFFFFFFFFFFFF


def sample_conductances(
    levels: torch.Tensor, spec: CrossbarSpec, generator: torch.Generator
) -> torch.Tensor:
    """Programmed cell conductances with faults, finite on/off ratio and variation.

    Args:
        levels: target levels, any shape (one entry per cell).
        spec: crossbar parameters.
        generator: random stream (CPU); the draws are made in a fixed order
            (fault uniforms, then variation normals) over the whole tensor.

    Returns:
        Conductances in level-step units, same shape, float32, ``>= 0``.
    """
    lv = levels.to(torch.float32)
    if spec.p_hrs > 0 or spec.p_lrs > 0:
        u = torch.rand(lv.shape, generator=generator)
        lv = torch.where(u < spec.p_hrs, torch.zeros_like(lv), lv)
        lv = torch.where(
            (u >= spec.p_hrs) & (u < spec.p_hrs + spec.p_lrs),
            torch.full_like(lv, spec.levels - 1),
            lv,
        )
    g = lv + spec.g_min if spec.g_min else lv.clone()
    if spec.sigma > 0:
        noise = torch.randn(g.shape, generator=generator)
        g = (g * (1 + spec.sigma * noise)).clamp_(min=0)
    return g
