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
* **Programming noise** beyond that (``device.prog_noise_pct``, ``noise_model: pcm``):
  ``g + s(g) * N(0,1)`` with ``s(g)`` relative to ``G_max = g_min + levels - 1`` (state
  independent, and/or the PCM polynomial), or the lognormal equivalent; then clipped to
  ``[0, G_max]`` (``device.clip_gmax``). **Drift** and the PCM **1/f noise** turn the
  programmed conductances into those read at ``device.time_s``
  (:func:`read_time_conductances`). Formulas and sources: ``docs/pim_simulator.md``.
* **Random streams**: layer ``i`` of a run with seed ``s`` draws faults and variation from
  stream ``(s, i)`` exactly as before these models existed (old seeds keep their maps);
  every newer model draws from its own stream ``(s, i, j)`` (:class:`LayerStreams`), so
  switching one on or off, or changing the read time, never moves another's draws.
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
        read_rows: rows read at once (``crossbar.subarray_rows``; ``rows`` when unset).
        n_reads: row groups read separately: per crossbar ``ceil(rows used / read_rows)``,
            summed over the ``n_blocks`` crossbars (= ``n_blocks`` when ``read_rows == rows``).
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
    read_rows: int = 0
    n_reads: int = 0

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
        sub = spec.sub_rows
        n_blocks = math.ceil(k / spec.rows)
        n_reads = sum(
            math.ceil(min(spec.rows, k - b * spec.rows) / sub) for b in range(n_blocks)
        )
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
            n_blocks=n_blocks,
            rows=spec.rows,
            col_blocks=math.ceil(n * n_slices / spec.cols),
            read_rows=sub,
            n_reads=n_reads,
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

    def read_index(self) -> torch.Tensor:
        """Where each row of each read group comes from: ``(n_reads * read_rows,)`` indices
        into the reduction dimension, ``k`` marking padding (an unused row: zero input,
        zero conductance). Read group order: crossbar, then row group within it."""
        idx: list[int] = []
        for b in range(self.n_blocks):
            lo, hi = b * self.rows, min(self.k, (b + 1) * self.rows)
            for start in range(lo, hi, self.read_rows):
                stop = min(start + self.read_rows, hi)
                idx.extend(range(start, stop))
                idx.extend([self.k] * (self.read_rows - (stop - start)))
        return torch.tensor(idx, dtype=torch.long)

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


def derive_seed(seed: int, index: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for stream ``index`` of ``seed`` (``seed >= 0``).

    ``stream > 0`` gives further independent streams of the same ``(seed, index)``
    (``stream = 0`` is the original one, unchanged).
    """
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, int(index)]
    if stream:
        words.append(int(stream))
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & 0x7FFFFFFFFFFFFFFF


STREAM_FAULTS_VARIATION = 0
"""Stuck-at faults, then MNSIM's relative variation (the original stream)."""
STREAM_PROGRAMMING = 1
"""State-independent / PCM programming noise."""
STREAM_DRIFT = 2
"""Drift exponents."""
STREAM_FLICKER = 3
"""PCM accumulated 1/f noise at the read time."""
STREAM_READ = 4
"""Per-read noise (a key, combined with each input's content)."""


@dataclass(frozen=True)
class LayerStreams:
    """The random streams of one simulated layer: ``(seed, index, stream)``."""

    seed: int
    index: int

    def generator(self, stream: int = STREAM_FAULTS_VARIATION) -> torch.Generator:
        """A CPU generator of ``stream`` (0: :func:`layer_generator`'s stream)."""
        g = torch.Generator()
        g.manual_seed(derive_seed(self.seed, self.index, stream))
        return g

    def key(self, stream: int) -> int:
        """A 63-bit key of ``stream`` (for counter-style draws)."""
        return derive_seed(self.seed, self.index, stream)


# PCM statistics (Nandakumar et al., ICECS 2019 / J. Appl. Phys. 2019; the same fits as
# IBM aihwkit's PCMLikeNoiseModel). x = G / G_max.
PCM_PROG_COEFF_US = (0.26348, 1.9650, -1.1731)
"""Programming-noise sigma polynomial ``c0 + c1 x + c2 x^2`` in uS of a 25 uS device."""
PCM_G_MAX_REF_US = 25.0
PCM_T_READ_S = 250e-9
"""Read duration of the 1/f-noise fit."""
PCM_FLICKER_Q = 0.0088
PCM_FLICKER_EXP = 0.65


def pcm_programming_sigma(x: torch.Tensor) -> torch.Tensor:
    """PCM programming-noise sigma as a fraction of ``G_max`` at ``x = G / G_max``."""
    c0, c1, c2 = PCM_PROG_COEFF_US
    return ((c0 + c1 * x + c2 * x * x) / PCM_G_MAX_REF_US).clamp(min=0.0)


def pcm_drift_exponent_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread of the PCM drift exponent at ``x = G / G_max`` (target state)."""
    lx = torch.log(x.clamp(min=1e-7))
    mean = (-0.0155 * lx + 0.0244).clamp(0.049, 0.1)
    std = (-0.0125 * lx - 0.0059).clamp(0.008, 0.045)
    return mean, std


def pcm_flicker_sigma(x: torch.Tensor, t_s: float) -> torch.Tensor:
    """Relative sigma of the PCM 1/f noise accumulated at ``t_s`` seconds, at programmed
    ``x = G / G_max``: ``q(x) * sqrt(ln((t + t_read) / (2 t_read)))``."""
    q = (PCM_FLICKER_Q / x.abs().pow(PCM_FLICKER_EXP).clamp(min=1e-3)).clamp(max=0.2)
    return q * math.sqrt(math.log((t_s + PCM_T_READ_S) / (2 * PCM_T_READ_S)))


def _lognormal_factor(rel_sigma: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """``exp(s N - s^2/2)`` with ``s^2 = ln(1 + rel_sigma^2)``: mean 1, std ``rel_sigma``."""
    s2 = torch.log1p(rel_sigma * rel_sigma)
    return torch.exp(s2.sqrt() * normal - 0.5 * s2)


def sample_conductances(
    levels: torch.Tensor,
    spec: CrossbarSpec,
    generator: torch.Generator,
    programming: torch.Generator | None = None,
) -> torch.Tensor:
    """Programmed cell conductances with faults, finite on/off ratio and variation.

    Args:
        levels: target levels, any shape (one entry per cell).
        spec: crossbar parameters.
        generator: random stream (CPU) of faults and relative variation; the draws are
            made in a fixed order (fault uniforms, then variation normals) over the whole
            tensor.
        programming: random stream (CPU) of the state-independent / PCM programming
            noise (needed when ``spec.prog_sigma > 0`` or ``spec.noise_model == "pcm"``).

    Returns:
        Conductances in level-step units, same shape, float32, ``>= 0`` (and ``<= G_max``
        under :attr:`CrossbarSpec.new_programming_model` with ``clip_gmax``).
    """
    return _program(levels, spec, generator, programming)[0]


def _program(
    levels: torch.Tensor,
    spec: CrossbarSpec,
    generator: torch.Generator,
    programming: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(programmed, target)`` conductances (see :func:`sample_conductances`); the
    target is the nominal conductance of each cell's state (faults included)."""
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
    target = g.clone()
    if spec.sigma > 0:
        noise = torch.randn(g.shape, generator=generator)
        if spec.lognormal:
            g = g * _lognormal_factor(torch.full_like(g, spec.sigma), noise)
        else:
            g = (g * (1 + spec.sigma * noise)).clamp_(min=0)
    if spec.prog_sigma > 0 or spec.pcm:
        if programming is None:
            raise ValueError("sample_conductances: the programming-noise stream is missing")
        rel = torch.full_like(g, spec.prog_sigma)  # sigma / G_max
        if spec.pcm:
            rel = torch.sqrt(rel * rel + pcm_programming_sigma(target / spec.g_top) ** 2)
        noise = torch.randn(g.shape, generator=programming)
        if spec.lognormal:
            ratio = rel * spec.g_top / target.clamp(min=1e-12)
            g = torch.where(target > 0, g * _lognormal_factor(ratio, noise), g)
        else:
            g = (g + rel * spec.g_top * noise).clamp_(min=0)
    if spec.clip_gmax and spec.new_programming_model:
        g = g.clamp_(max=spec.g_top)
    return g, target


def program_cells(
    levels: torch.Tensor, spec: CrossbarSpec, streams: LayerStreams
) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's cells: ``(programmed, read)`` conductances from its random streams.

    ``read`` are the conductances at ``spec.time_s`` (:func:`read_time_conductances`);
    it is the very same tensor as ``programmed`` when nothing changes by then.
    """
    needs_prog = spec.prog_sigma > 0 or spec.pcm
    g_prog, target = _program(
        levels,
        spec,
        streams.generator(STREAM_FAULTS_VARIATION),
        streams.generator(STREAM_PROGRAMMING) if needs_prog else None,
    )
    if not spec.read_time_effects:
        return g_prog, g_prog
    g_read = read_time_conductances(
        g_prog, target, spec, streams.generator(STREAM_DRIFT), streams.generator(STREAM_FLICKER)
    )
    return g_prog, g_read


def read_time_conductances(
    g_prog: torch.Tensor,
    g_target: torch.Tensor,
    spec: CrossbarSpec,
    drift: torch.Generator,
    flicker: torch.Generator,
) -> torch.Tensor:
    """The conductances read ``spec.time_s`` seconds after programming.

    Drift ``G(t) = G(t0) (t / t0)^-nu`` per cell with ``t = max(time_s, t0)`` (no drift
    before the reference read at ``t0``); ``nu ~ max(N(drift_nu, drift_nu_std), 0)``
    (``gaussian``), or for ``pcm`` ``|N(mu(x), s(x))|`` of the target state ``x``, plus the
    accumulated 1/f noise ``G(t) * sigma_f(x_prog, t) * N`` (then clamped at 0).

    Args:
        g_prog: programmed conductances (level steps), any shape.
        g_target: their nominal values (same shape).
        spec: crossbar parameters (``time_s``, drift fields, ``noise_model``).
        drift, flicker: the drift-exponent and 1/f-noise streams (CPU).

    Returns:
        ``g_prog`` itself when nothing happens by ``time_s`` (no drift, or
        ``time_s == 0``), else a new tensor.
    """
    if not spec.read_time_effects:
        return g_prog
    t = max(spec.time_s, spec.drift_t0_s)
    if spec.pcm:
        mean, std = pcm_drift_exponent_stats(g_target / spec.g_top)
        nu = (mean + std * torch.randn(g_prog.shape, generator=drift)).abs()
    elif spec.drift_nu_std > 0:
        nu = (spec.drift_nu + spec.drift_nu_std * torch.randn(g_prog.shape, generator=drift)).clamp(min=0)
    else:
        nu = torch.full_like(g_prog, spec.drift_nu)
    g = g_prog * torch.pow(t / spec.drift_t0_s, -nu)
    if spec.pcm:
        sig = pcm_flicker_sigma(g_prog / spec.g_top, t)
        g = (g + g.abs() * sig * torch.randn(g_prog.shape, generator=flicker)).clamp_(min=0)
    return g
