"""Crossbar-simulated replacements of :class:`QuantConv2d` and :class:`QuantLinear`.

A layer ``y = step_x * step_w[n] * (x_int @ w_int[n]) + bias`` (the shared
quantization convention) is computed as the hardware would (see
:mod:`crossnas.pimsim.mapping` for the encodings):

    acc[m, n] = c * sum_{pass, cycle} gamma * sum_{read group} sum_{array, slice} beta
                * ADC( sum_{rows r of the group} d[m, r] * g[r, (array, slice, n)] + read noise )
                - kappa * sum_r x_int[m, r]

A read group is ``crossbar.subarray_rows`` rows of one crossbar (all its rows when unset):
the reduction dimension is cut into crossbars of ``rows`` rows, each crossbar into groups
of ``subarray_rows`` rows, and each group's column sums go through the ADC separately.
``kappa = weight_offset + g_min * sum(beta)`` is the digital correction (offset encoding
and the nominal HRS current); ``c`` is the layer's drift-compensation gain (1 without
drift). Then ``y = step_x * step_w * acc + bias``.

**ADC range rules** (``adc.range_mode``; the step rule is in :mod:`crossnas.pimsim.adc`):

* ``"fixed"``: full scale = the signal maximum of a column of one read group,
  ``subarray_rows * (2**dac_bits - 1) * (levels - 1)`` (the HRS leakage ``g_min`` is not
  counted: the range is set for the signal), the same for every layer.
* ``"scale"``: full scale = per layer, the ``adc_scale_percentile`` (default: max)
  of the partial sums seen on calibration data with this run's devices as programmed
  (at ``t0``: ranges are set when the chip is programmed, drift comes later); the first
  input a layer sees calibrates it unless calibrated explicitly. Calibration data that
  give only zero partial sums fall back to the fixed range (with a warning).

**Read noise** (``device.read_noise_pct``): every cell read adds ``N(0, (s * G_max)^2)``
times its input digit, so a partial sum over rows ``r`` gets ``N(0, s^2 G_max^2 sum_r
d_r^2)``: drawn per partial sum with exactly that distribution. The draws of input ``b``
(the first dimension) come from a generator keyed on (run seed, layer, a hash of input
``b``'s integer values, fixed group of 64 output rows): independent of the batch size,
of the batch order and of chunking (two identical inputs get identical noise).

**Two paths**, both vectorised:

* *Fast path*, exact by algebra: when the ADC neither clips nor rounds (ideal ADC; or
  integer conductances, a step <= 1 and a range above the largest possible partial
  sum) and there is no read noise, every sum above is linear, so ``acc = x_int @ w_eff``
  with ``w_eff = c * sum beta * g - kappa``: one conv/linear, as fast as the digital
  layer. With nominal devices ``w_eff == w_int`` and the output is bit-identical to the
  fake-quantized layer.
* *General path*: unfold once per chunk, all input digits of all cycles and passes
  stacked into one batched matmul per chunk against all (array, slice, output)
  columns of every read group, the ADC applied in place, and the shift-add done as
  one matrix-vector product over (group, cycle) plus a small one over (array, slice).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.pimsim.adc import adc_step
from crossnas.pimsim.mapping import (
    STREAM_READ,
    LayerPlan,
    LayerStreams,
    program_cells,
    weight_levels,
)
from crossnas.pimsim.settings import CrossbarSpec, PimSimSettings
from crossnas.quant import QuantConv2d, QuantLinear, quantize_act_int, quantize_weight_int

logger = logging.getLogger(__name__)

_MAX_PERCENTILE_SAMPLES = 1 << 22
NOISE_GROUP_ROWS = 64
"""Output rows (pixels) of one input that share one read-noise generator."""
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def noise_seed(*words: int) -> int:
    """A 63-bit seed mixed from integer words (order matters)."""
    h = 0
    for w in words:
        h = _splitmix64(h ^ (int(w) & _MASK64))
    return h & 0x7FFFFFFFFFFFFFFF


class PimLayer(nn.Module):
    """Common part of the simulated conv and linear layers.

    Attributes:
        name: the layer's module path (for messages).
        plan: its crossbar layout.
        spec: the hardware parameters.
        adc_step_value: ADC step in level units (``None``: ideal ADC or not yet calibrated).
        full_scale: the ADC full scale used (``None`` for an ideal ADC).
        fast: whether the algebraic fast path is used.
        drift_gain: the global drift compensation gain ``c`` (1.0 without drift or
            with ``device.drift_compensation: false``).

    Buffers:
        g_blocks: cell conductances at the read time (level-step units), zero-padded
            into read groups, ``(n_reads, read_rows, columns)``, columns ordered (array,
            slice, output); :attr:`conductance` gives them per cell ``(k, n_arrays,
            n_slices, n)``.
        g_prog_blocks: the programmed (``t0``) conductances in the same layout, when they
            differ from ``g_blocks`` (drift); ``None`` otherwise.
        w_eff: effective integer-unit weight, shape of the layer weight.
        step_w: per-output weight step, shape ``(n,)``.
        act_clip: the input clip value (copied from the source layer).
    """

    g_blocks: torch.Tensor
    g_prog_blocks: torch.Tensor | None
    w_eff: torch.Tensor
    step_w: torch.Tensor
    act_clip: torch.Tensor
    bias: torch.Tensor | None
    g_read: torch.Tensor | None
    beta: torch.Tensor
    gamma: torch.Tensor
    read_index: torch.Tensor

    def __init__(
        self,
        source: QuantConv2d | QuantLinear,
        spec: CrossbarSpec,
        settings: PimSimSettings,
        streams: LayerStreams,
        name: str = "",
    ) -> None:
        super().__init__()
        if source.w_bits is None or source.a_bits is None:
            raise CrossnasError(
                f"layer {name or type(source).__name__}: w_bits/a_bits are None; the PIM simulator "
                "needs quantized layers (space.quantize: true)"
            )
        self.name = name
        self.spec = spec
        self.settings = settings
        weight = source.weight.detach()
        n = int(weight.shape[0])
        k = int(weight[0].numel())
        self.plan = LayerPlan.build(
            k, n, int(source.w_bits), int(source.a_bits), bool(source.signed_input), spec
        )
        self.a_bits = int(source.a_bits)
        self.signed_input = bool(source.signed_input)
        device = weight.device

        w_int, step_w = quantize_weight_int(weight, int(source.w_bits))
        levels = weight_levels(w_int.reshape(n, k).cpu(), self.plan)
        g_prog, g = program_cells(levels, spec, streams)  # (k, A, S, n) each
        plan = self.plan
        beta = plan.column_coefficients()  # float64 (A*S,)
        kappa = plan.weight_offset + spec.g_min * float(beta.sum())
        analog = (g.to(torch.float64).reshape(k, -1, n) * beta.view(1, -1, 1)).sum(1)  # (k, n)
        gain = 1.0
        if g is not g_prog and spec.drift_compensation:
            # Global drift compensation (as aihwkit's GlobalDriftCompensation): the mean
            # absolute output of one-hot probe inputs (one read per row, the analog part,
            # read precisely), programmed chip over chip at the read time.
            ref = (g_prog.to(torch.float64).reshape(k, -1, n) * beta.view(1, -1, 1)).sum(1)
            now = float(analog.abs().sum())
            gain = float(ref.abs().sum()) / now if now > 0 else 1.0
        self.drift_gain = gain
        w_eff = (analog * gain if gain != 1.0 else analog) - kappa  # (k, n)
        index = plan.read_index()
        self.register_buffer("read_index", index.to(device))

        self.kappa = float(kappa)
        self.register_buffer("g_blocks", self._to_blocks(g, index).to(device))
        self.register_buffer(
            "g_prog_blocks", self._to_blocks(g_prog, index).to(device) if g is not g_prog else None
        )
        self.register_buffer(
            "w_eff", w_eff.t().to(torch.float32).reshape(weight.shape).contiguous().to(device)
        )
        self.register_buffer("step_w", step_w.reshape(n).to(device))
        self.register_buffer("act_clip", source.act_clip.detach().clone())
        self.register_buffer("beta", beta.to(torch.float32).to(device))
        self.register_buffer("gamma", plan.cycle_coefficients().to(torch.float32).to(device))
        bias = source.bias.detach().clone() if source.bias is not None else None
        self.register_buffer("bias", bias)
        self.noise_key = streams.key(STREAM_READ) if spec.read_noise else 0
        self._hash_coeffs: dict[tuple[int, str], torch.Tensor] = {}

        self.adc_step_value: float | None = None
        self.full_scale: float | None = None
        self.register_buffer("g_read", None)  # g_blocks / ADC step, set with the range
        self._may_clip = True
        if spec.adc_bits is not None and spec.range_mode == "fixed":
            self._set_full_scale(self._fixed_full_scale())
            dac_max = (1 << spec.dac_bits) - 1
            reachable = min(k, plan.read_rows) * dac_max * (spec.levels - 1 + spec.g_min)
            assert self.adc_step_value is not None
            if reachable < self.adc_step_value / 2:
                raise CrossnasError(
                    f"adc.range_mode 'fixed' with adc.bits={spec.adc_bits}: layer {name} partial sums "
                    f"(at most {reachable:g}) all read as 0 (ADC step {self.adc_step_value:g}); "
                    "use more adc.bits, fewer crossbar.rows or adc.range_mode 'scale'"
                )
        self.fast = self._fast_path_exact()

    def _to_blocks(self, g: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Cells ``(k, A, S, n)`` -> read groups ``(n_reads, read_rows, columns)``."""
        p = self.plan
        flat = F.pad(g.reshape(p.k, p.n_columns), (0, 0, 0, 1))  # row k: padding (zero)
        return flat.index_select(0, index).reshape(p.n_reads, p.read_rows, p.n_columns).contiguous()

    # -- configuration -------------------------------------------------------------
    def _cells(self, blocks: torch.Tensor) -> torch.Tensor:
        p = self.plan
        flat = blocks.reshape(p.n_reads * p.read_rows, p.n_columns)
        pos = torch.nonzero(self.read_index < p.k).squeeze(1)
        order = self.read_index[pos]
        out = flat.new_empty((p.k, p.n_columns))
        out[order] = flat[pos]
        return out.view(p.k, p.n_arrays, p.n_slices, p.n)

    @property
    def conductance(self) -> torch.Tensor:
        """Cell conductances at the read time, ``(k, n_arrays, n_slices, n)`` (a copy)."""
        return self._cells(self.g_blocks)

    @property
    def programmed_conductance(self) -> torch.Tensor:
        """Programmed (``t0``) cell conductances, ``(k, n_arrays, n_slices, n)`` (a copy)."""
        return self._cells(self.g_blocks if self.g_prog_blocks is None else self.g_prog_blocks)

    @property
    def needs_calibration(self) -> bool:
        """True until a "scale" ADC range has been calibrated."""
        return self.spec.adc_bits is not None and self.adc_step_value is None

    def _fixed_full_scale(self) -> float:
        """The "fixed" rule's full scale: the signal maximum of one read group's column."""
        spec = self.spec
        return float(self.plan.read_rows * ((1 << spec.dac_bits) - 1) * (spec.levels - 1))

    def _set_full_scale(self, full_scale: float) -> None:
        bits = self.spec.adc_bits
        assert bits is not None
        self.full_scale = float(full_scale)
        step = adc_step(full_scale, bits)
        self.adc_step_value = step
        self.g_read = self.g_blocks * (1.0 / step)
        # A partial sum below (top code + 1/2) * step reads without clipping; read noise
        # can take any partial sum anywhere.
        self._may_clip = (
            self.spec.read_noise or self._max_partial_sum() >= ((1 << bits) - 0.5) * step
        )

    def _max_partial_sum(self) -> float:
        """The largest noiseless partial sum any input can produce on this layer's devices."""
        g = self.g_blocks
        return ((1 << self.spec.dac_bits) - 1) * float(g.sum(1).max()) if g.numel() else 0.0

    def _fast_path_exact(self) -> bool:
        """Whether the ADC provably neither clips nor rounds (so one matmul is exact)."""
        if self.settings.force_general_path or self.spec.read_noise:
            return False
        bits, step = self.spec.adc_bits, self.adc_step_value
        if bits is None:
            return True
        if step is None or step > 1:
            return False
        g = self.g_blocks
        if not bool(torch.equal(g, torch.round(g))):
            return False
        return self._max_partial_sum() <= ((1 << bits) - 1) * step

    def calibrate(self, x: torch.Tensor) -> None:
        """Sets a "scale" ADC full scale from this layer's input ``x`` (float, real units),
        on the devices as programmed (noiseless reads)."""
        x_int, _ = self._quantize_input(x)
        values: list[torch.Tensor] = []
        maxima: list[float] = []
        pct = self.settings.adc_scale_percentile
        g_cal = self.g_blocks if self.g_prog_blocks is None else self.g_prog_blocks
        for _, rows in self._row_chunks(x_int):
            ps = torch.bmm(self._digits(rows), g_cal)
            if ps.numel() == 0:
                continue
            maxima.append(float(ps.max()))
            if pct < 100:
                flat = ps.reshape(-1)
                stride = max(1, flat.numel() // (1 << 18))
                values.append(flat[::stride].clone())
        top = max(maxima, default=0.0)
        full_scale = top
        if pct < 100 and values:
            sample = torch.cat(values)
            if sample.numel() > _MAX_PERCENTILE_SAMPLES:
                sample = sample[:: math.ceil(sample.numel() / _MAX_PERCENTILE_SAMPLES)]
            full_scale = float(torch.quantile(sample.double(), pct / 100.0))
            if not full_scale > 0:
                full_scale = top  # mostly zeros: the percentile says nothing, use the maximum
        if not (full_scale > 0 and math.isfinite(full_scale)):
            full_scale = self._fixed_full_scale()
            logger.warning(
                "%s: the calibration inputs give only zero partial sums; using the fixed ADC "
                "range (full scale %g) for this layer",
                self.name or type(self).__name__,
                full_scale,
            )
        self._set_full_scale(full_scale)
        self.fast = self._fast_path_exact()
        logger.debug(
            "%s: ADC full scale %g, step %g, fast=%s",
            self.name,
            full_scale,
            self.adc_step_value,
            self.fast,
        )

    # -- computation ----------------------------------------------------------------
    def _quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantize_act_int(x, self.a_bits, self.act_clip, self.signed_input)

    def _digital(self, xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _row_chunks(self, x_int: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yields ``(first row, rows)``: ``(m, k)`` integer input rows in chunks, with the
        index of their first row among all ``(inputs x rows per input)`` rows."""
        raise NotImplementedError

    def _rows_per_chunk(self) -> int:
        p = self.plan
        per_row = p.n_input_cycles * p.n_reads * (p.n_columns + p.read_rows)
        return max(1, self.settings.chunk_elements // per_row)

    def _digits(self, rows: torch.Tensor) -> torch.Tensor:
        """Input digits laid out for the batched matmul: ``(n_reads, cycles * m, read_rows)``."""
        p = self.plan
        m = rows.shape[0]
        ints = rows.to(torch.int32)
        parts = [ints] if not p.signed else [ints.clamp(min=0), (-ints).clamp(min=0)]
        digits = rows.new_empty((p.n_reads, p.n_input_cycles, m, p.read_rows))
        mask = (1 << p.dac_bits) - 1
        i = 0
        for part in parts:
            blk = (
                F.pad(part, (0, 1))
                .index_select(1, self.read_index)
                .view(m, p.n_reads, p.read_rows)
                .transpose(0, 1)
            )  # (n_reads, m, R)
            for c in range(p.n_cycles):
                digits[:, i] = (blk >> (p.dac_bits * c)) & mask if c else blk & mask
                i += 1
        return digits.view(p.n_reads, p.n_input_cycles * m, p.read_rows)

    def _partial_sums(
        self, rows: torch.Tensor, g_blocks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Noiseless column partial sums of every read group: ``(n_reads, cycles * m, columns)``."""
        return torch.bmm(self._digits(rows), self.g_blocks if g_blocks is None else g_blocks)

    def _sample_keys(self, x_int: torch.Tensor) -> list[int]:
        """A 64-bit hash of each input's integer values (first dimension = input)."""
        b = x_int.shape[0]
        if b == 0 or x_int.numel() == 0:
            return [0] * b
        flat = x_int.reshape(b, -1).to(torch.int64)
        key = (flat.shape[1], str(flat.device))
        coeffs = self._hash_coeffs.get(key)
        if coeffs is None:
            gen = torch.Generator().manual_seed(0x5EED_C0DE)
            # |x_int| < 2**17 and coefficients < 2**24: no int64 overflow up to 2**22 values
            coeffs = torch.randint(1, 1 << 24, (flat.shape[1],), generator=gen, dtype=torch.int64)
            coeffs = coeffs.to(flat.device)
            self._hash_coeffs[key] = coeffs
        return [int(h) for h in (flat * coeffs).sum(1).tolist()]

    def _read_noise(
        self, start: int, m: int, keys: list[int], per_input: int, device: torch.device
    ) -> torch.Tensor:
        """Standard normals of the reads of rows ``start .. start + m``:
        ``(n_reads, cycles * m, columns)``, the same for a row whatever the chunking."""
        p = self.plan
        per_row = p.n_reads * p.n_input_cycles * p.n_columns
        gen = torch.Generator(device=device)
        pieces = []
        r, end = start, start + m
        while r < end:
            b, pos = divmod(r, per_input)
            group = pos // NOISE_GROUP_ROWS
            lo = group * NOISE_GROUP_ROWS
            hi = min(lo + NOISE_GROUP_ROWS, per_input)
            take = min(hi, pos + end - r)
            gen.manual_seed(noise_seed(self.noise_key, keys[b], group))
            z = torch.randn((hi - lo, per_row), generator=gen, device=device)
            pieces.append(z[pos - lo : take - lo])
            r += take - pos
        z = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return (
            z.view(m, p.n_reads, p.n_input_cycles, p.n_columns)
            .permute(1, 2, 0, 3)
            .reshape(p.n_reads, p.n_input_cycles * m, p.n_columns)
        )

    def _accumulate(
        self, rows: torch.Tensor, start: int = 0, keys: list[int] | None = None, per_input: int = 1
    ) -> torch.Tensor:
        """The integer-unit result ``acc`` of ``(m, k)`` input rows: ``(m, n)``."""
        p = self.plan
        m = rows.shape[0]
        beta = self.beta
        bits, step = self.spec.adc_bits, self.adc_step_value
        digits = self._digits(rows)
        if bits is None:
            ps = torch.bmm(digits, self.g_blocks)
            unit = 1.0
        else:
            assert step is not None and self.g_read is not None
            # ps / step directly (conductances pre-divided by the power-of-two step: exact)
            ps = torch.bmm(digits, self.g_read)
            beta = beta * step
            unit = 1.0 / step
        if self.spec.read_noise:
            assert keys is not None
            sd = digits.square().sum(-1, keepdim=True).sqrt_()  # (n_reads, cycles*m, 1)
            sigma = self.spec.read_sigma * self.spec.g_top * unit
            z = self._read_noise(start, m, keys, per_input, ps.device)
            ps.add_(z.mul_(sd).mul_(sigma))
        if bits is not None:
            ps.round_()
            if self.spec.read_noise:
                ps.clamp_(0.0, float((1 << bits) - 1))
            elif self._may_clip:
                ps.clamp_(max=float((1 << bits) - 1))
        if self.drift_gain != 1.0:
            beta = beta * self.drift_gain
        coef = self.gamma.repeat(p.n_reads)  # (n_reads * cycles,), order (group, pass, cycle)
        summed = torch.mv(ps.view(p.n_reads * p.n_input_cycles, m * p.n_columns).t(), coef)
        acc = torch.matmul(
            summed.view(m, p.n_arrays * p.n_slices, p.n).transpose(1, 2), beta
        )  # (m, n)
        if self.kappa:
            acc = acc - self.kappa * rows.sum(1, keepdim=True)
        return acc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Simulated layer output for input ``x`` (no gradient: the read-out is not differentiable)."""
        x = x.detach()
        if self.needs_calibration:
            logger.debug("%s: calibrating the ADC range on the first input", self.name)
            self.calibrate(x)
        x_int, step_x = self._quantize_input(x)
        if self.fast:
            return self._digital(
                x_int * step_x, self.w_eff * self.step_w.view((-1,) + (1,) * (self.w_eff.dim() - 1))
            )
        return self._general(x_int, step_x)

    def _general(self, x_int: torch.Tensor, step_x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _chunk_results(self, x_int: torch.Tensor, per_input: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, acc)`` of every chunk of ``x_int``'s rows."""
        keys = self._sample_keys(x_int) if self.spec.read_noise else None
        for start, rows in self._row_chunks(x_int):
            yield start, self._accumulate(rows, start, keys, per_input)

    def extra_repr(self) -> str:
        p = self.plan
        return (
            f"name={self.name!r}, k={p.k}, n={p.n}, w_bits={p.w_bits}, a_bits={p.a_bits}, signed={p.signed}, "
            f"arrays={p.n_arrays}, slices={p.n_slices}, cycles={p.n_input_cycles}, blocks={p.n_blocks}, "
            f"reads={p.n_reads}, adc_step={self.adc_step_value}, drift_gain={self.drift_gain:.6g}, fast={self.fast}"
        )


class PimConv2d(PimLayer):
    """A :class:`QuantConv2d` on simulated crossbars (input ``(B, C, H, W)``)."""

    def __init__(
        self,
        source: QuantConv2d,
        spec: CrossbarSpec,
        settings: PimSimSettings,
        streams: LayerStreams,
        name: str = "",
    ) -> None:
        if source.groups != 1 or source.padding_mode != "zeros" or isinstance(source.padding, str):
            raise CrossnasError(
                f"layer {name}: only groups=1 and numeric zero padding are supported by the PIM simulator"
            )
        super().__init__(source, spec, settings, streams, name)
        self.kernel_size: tuple[int, int] = (int(source.kernel_size[0]), int(source.kernel_size[1]))
        self.stride: tuple[int, int] = (int(source.stride[0]), int(source.stride[1]))
        self.padding: tuple[int, int] = (int(source.padding[0]), int(source.padding[1]))
        self.dilation: tuple[int, int] = (int(source.dilation[0]), int(source.dilation[1]))

    def _digital(self, xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
        return F.conv2d(xq, wq, self.bias, self.stride, self.padding, self.dilation)

    def _images_per_chunk(self, hw_out: int) -> int:
        return max(1, self._rows_per_chunk() // max(1, hw_out))

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        def size(i: int, d: int) -> int:
            k, s, p, dil = self.kernel_size[d], self.stride[d], self.padding[d], self.dilation[d]
            return (i + 2 * p - dil * (k - 1) - 1) // s + 1

        return size(h, 0), size(w, 1)

    def _unfold(self, x_int: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(
            x_int, self.kernel_size, self.dilation, self.padding, self.stride
        )  # (b, k, L)
        return cols.transpose(1, 2).reshape(-1, self.plan.k)

    def _row_chunks(self, x_int: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        ho, wo = self._out_hw(x_int.shape[2], x_int.shape[3])
        images = self._images_per_chunk(ho * wo)
        rows_per = self._rows_per_chunk()
        for i in range(0, x_int.shape[0], images):
            cols = self._unfold(x_int[i : i + images])
            for j in range(0, cols.shape[0], rows_per):
                yield i * ho * wo + j, cols[j : j + rows_per]

    def _general(self, x_int: torch.Tensor, step_x: torch.Tensor) -> torch.Tensor:
        b = x_int.shape[0]
        ho, wo = self._out_hw(x_int.shape[2], x_int.shape[3])
        n = self.plan.n
        out = x_int.new_empty((b * ho * wo, n))
        scale = step_x * self.step_w
        for start, acc in self._chunk_results(x_int, ho * wo):
            torch.mul(acc, scale, out=out[start : start + acc.shape[0]])
        y = out.view(b, ho * wo, n).transpose(1, 2).reshape(b, n, ho, wo)  # a copy
        del out
        if self.bias is not None:
            y.add_(self.bias.view(1, -1, 1, 1))
        return y


class PimLinear(PimLayer):
    """A :class:`QuantLinear` on simulated crossbars (input ``(..., in_features)``)."""

    def _digital(self, xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
        return F.linear(xq, wq, self.bias)

    def _row_chunks(self, x_int: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        rows = x_int.reshape(-1, self.plan.k)
        step = self._rows_per_chunk()
        for i in range(0, rows.shape[0], step):
            yield i, rows[i : i + step]

    def _general(self, x_int: torch.Tensor, step_x: torch.Tensor) -> torch.Tensor:
        lead = x_int.shape[:-1]
        scale = step_x * self.step_w
        if x_int.dim() == 1:  # one unbatched input vector
            x_int = x_int.unsqueeze(0)
        per_input = math.prod(x_int.shape[1:-1])  # rows per input (1 for (batch, k))
        outs = [acc * scale for _, acc in self._chunk_results(x_int, per_input)]
        y = torch.cat(outs, 0) if outs else x_int.new_zeros((0, self.plan.n))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.plan.n)


class PimEpitomeConv2d(nn.Module):
    """An :class:`~crossnas.quant.epitome.EpitomeConv2d` on simulated crossbars: only the
    epitome ``E`` is stored (one :class:`PimConv2d` over ``E_in`` input and ``E_out`` output
    channels); the digital side folds the input chunks and copies the ``E_out`` outputs to
    the ``C_out`` logical channels (per-channel scaling follows in the next BatchNorm).

    Input wrapping, as the cost model counts it (``hardware.epitome.datapath``):

    * ``sum``: the quantized input chunks are added digitally before the DAC; the sums need
      ``ceil(log2 in_wrap)`` more bits, so the crossbar layer reads ``a_bits + that`` input
      bits (more DAC cycles) with the same input step.
    * ``reactivate``: the crossbar is read once per chunk (each an ``a_bits`` input) and the
      results are added after the ADC.

    Attributes:
        pim: the crossbar layer holding ``E``.
    """

    def __init__(
        self,
        source: QuantConv2d,
        spec: CrossbarSpec,
        settings: PimSimSettings,
        streams: LayerStreams,
        name: str = "",
        datapath: str = "sum",
    ) -> None:
        super().__init__()
        from crossnas.quant.epitome import EpitomeConv2d
        from crossnas.quant.functions import act_qmax, act_step

        assert isinstance(source, EpitomeConv2d)
        if source.a_bits is None or source.w_bits is None:
            raise CrossnasError(f"layer {name}: w_bits/a_bits are None; the PIM simulator needs quantized layers")
        if datapath not in ("sum", "reactivate"):
            raise CrossnasError(f"epitome.datapath: {datapath!r}; allowed: sum, reactivate")
        e_out, e_in, kh, kw = source.epitome_shape
        self.name = name
        self.datapath = datapath
        self.in_wrap, self.out_wrap = int(source.in_wrap), int(source.out_wrap)
        self.in_channels, self.out_channels = int(source.in_channels), int(source.out_channels)
        self.e_in = e_in
        self.a_bits = int(source.a_bits)
        self.signed_input = bool(source.signed_input)
        self.act_clip: torch.Tensor
        self.register_buffer("act_clip", source.act_clip.detach().clone())
        extra = math.ceil(math.log2(self.in_wrap)) if datapath == "sum" and self.in_wrap > 1 else 0
        if kh != kw:
            raise CrossnasError(f"layer {name}: non-square epitome kernel {kh}x{kw} is not supported")
        inner = QuantConv2d(e_in, e_out, kh, stride=int(source.stride[0]), padding=int(source.padding[0]),  # type: ignore[arg-type]
                            bias=False, w_bits=int(source.w_bits), a_bits=self.a_bits + extra,
                            signed_input=self.signed_input)
        with torch.no_grad():
            inner.weight.copy_(source.weight.detach())
            step = act_step(self.act_clip, self.a_bits, self.signed_input)
            inner.act_clip.copy_(step * act_qmax(self.a_bits + extra, self.signed_input))  # the same input step
            inner.clip_initialised.fill_(True)
        self.pim = PimConv2d(inner.to(source.weight.device).eval(), spec, settings, streams, name)

    def _chunks(self, xq: torch.Tensor) -> torch.Tensor:
        """The input-channel chunks stacked along the batch: ``(in_wrap * B, E_in, H, W)``."""
        b, c = xq.shape[0], xq.shape[1]
        pad = self.in_wrap * self.e_in - c
        if pad > 0:
            xq = torch.cat([xq, xq.new_zeros((b, pad, *xq.shape[2:]))], dim=1)
        return xq.reshape(b, self.in_wrap, self.e_in, *xq.shape[2:]).transpose(0, 1).reshape(-1, self.e_in,
                                                                                               *xq.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from crossnas.quant.epitome import expand_channels, fold_channels

        x_int, step = quantize_act_int(x.detach(), self.a_bits, self.act_clip, self.signed_input)
        xq = x_int * step
        if self.datapath == "sum" or self.in_wrap == 1:
            y = self.pim(fold_channels(xq, self.e_in))
        else:
            b = x.shape[0]
            y = self.pim(self._chunks(xq))
            y = y.view(self.in_wrap, b, *y.shape[1:]).sum(0)
        return expand_channels(y, self.out_channels)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, out_wrap={self.out_wrap}, in_wrap={self.in_wrap}, "
                f"datapath={self.datapath!r}")
