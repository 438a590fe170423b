"""Crossbar-simulated replacements of :class:`QuantConv2d` and :class:`QuantLinear`.

A layer ``y = step_x * step_w[n] * (x_int @ w_int[n]) + bias`` (the shared
quantization convention) is computed as the hardware would (see
:mod:`crossnas.pimsim.mapping` for the encodings):

    acc[m, n] = sum_{pass, cycle} gamma * sum_{row block} sum_{array, slice} beta
                * ADC( sum_{rows r of the block} d[m, r] * g[r, (array, slice, n)] )
                - kappa * sum_r x_int[m, r]

``kappa = weight_offset + g_min * sum(beta)`` is the digital correction (offset
encoding and the nominal HRS current). Then ``y = step_x * step_w * acc + bias``.

**ADC range rules** (``adc.range_mode``; the step rule is in :mod:`crossnas.pimsim.adc`):

* ``"fixed"``: full scale = the physical maximum of a column of a full crossbar,
  ``rows * (2**dac_bits - 1) * (levels - 1 + g_min)``, the same for every layer.
* ``"scale"``: full scale = per layer, the ``adc_scale_percentile`` (default: max)
  of the partial sums seen on calibration data with this run's devices; the first
  input a layer sees calibrates it unless calibrated explicitly.

**Two paths**, both vectorised:

* *Fast path*, exact by algebra: when the ADC neither clips nor rounds (ideal ADC; or
  integer conductances, a step <= 1 and a range above the largest possible partial
  sum), every sum above is linear, so ``acc = x_int @ w_eff`` with
  ``w_eff = sum beta * g - kappa``: one conv/linear, as fast as the digital layer.
  With nominal devices ``w_eff == w_int`` and the output is bit-identical to the
  fake-quantized layer.
* *General path*: unfold once per chunk, all input digits of all cycles and passes
  stacked into one batched matmul per chunk against all (array, slice, output)
  columns of every row block, the ADC applied in place, and the shift-add done as
  one matrix-vector product over (block, cycle) plus a small one over (array, slice).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.pimsim.adc import adc_step
from crossnas.pimsim.mapping import LayerPlan, sample_conductances, weight_levels
from crossnas.pimsim.settings import CrossbarSpec, PimSimSettings
from crossnas.quant import QuantConv2d, QuantLinear, quantize_act_int, quantize_weight_int

logger = logging.getLogger(__name__)

_MAX_PERCENTILE_SAMPLES = 1 << 22


class PimLayer(nn.Module):
    """Common part of the simulated conv and linear layers.

    Attributes:
        name: the layer's module path (for messages).
        plan: its crossbar layout.
        spec: the hardware parameters.
        adc_step_value: ADC step in level units (``None``: ideal ADC or not yet calibrated).
        full_scale: the ADC full scale used (``None`` for an ideal ADC).
        fast: whether the algebraic fast path is used.

    Buffers:
        g_blocks: sampled cell conductances (level-step units), zero-padded into row
            blocks, ``(n_blocks, rows, columns)``, columns ordered (array, slice, output);
            :attr:`conductance` is the unpadded view ``(k, n_arrays, n_slices, n)``.
        w_eff: effective integer-unit weight, shape of the layer weight.
        step_w: per-output weight step, shape ``(n,)``.
        act_clip: the input clip value (copied from the source layer).
    """

    g_blocks: torch.Tensor
    w_eff: torch.Tensor
    step_w: torch.Tensor
    act_clip: torch.Tensor
    bias: torch.Tensor | None
    g_read: torch.Tensor | None
    beta: torch.Tensor
    gamma: torch.Tensor

    def __init__(
        self,
        source: QuantConv2d | QuantLinear,
        spec: CrossbarSpec,
        settings: PimSimSettings,
        generator: torch.Generator,
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
        g = sample_conductances(levels, spec, generator)  # (k, A, S, n)
        plan = self.plan
        beta = plan.column_coefficients()  # float64 (A*S,)
        kappa = plan.weight_offset + spec.g_min * float(beta.sum())
        w_eff = (g.to(torch.float64).reshape(k, -1, n) * beta.view(1, -1, 1)).sum(
            1
        ) - kappa  # (k, n)
        pad = plan.n_blocks * plan.rows - k
        g_flat = g.reshape(k, -1)
        g_blocks = F.pad(g_flat, (0, 0, 0, pad)).reshape(plan.n_blocks, plan.rows, plan.n_columns)

        self.kappa = float(kappa)
        self.register_buffer("g_blocks", g_blocks.contiguous().to(device))
        self.register_buffer(
            "w_eff", w_eff.t().to(torch.float32).reshape(weight.shape).contiguous().to(device)
        )
        self.register_buffer("step_w", step_w.reshape(n).to(device))
        self.register_buffer("act_clip", source.act_clip.detach().clone())
        self.register_buffer("beta", beta.to(torch.float32).to(device))
        self.register_buffer("gamma", plan.cycle_coefficients().to(torch.float32).to(device))
        bias = source.bias.detach().clone() if source.bias is not None else None
        self.register_buffer("bias", bias)

        self.adc_step_value: float | None = None
        self.full_scale: float | None = None
        self.register_buffer("g_read", None)  # g_blocks / ADC step, set with the range
        self._may_clip = True
        if spec.adc_bits is not None and spec.range_mode == "fixed":
            dac_max = (1 << spec.dac_bits) - 1
            self._set_full_scale(spec.rows * dac_max * (spec.levels - 1 + spec.g_min))
            reachable = min(k, spec.rows) * dac_max * (spec.levels - 1 + spec.g_min)
            assert self.adc_step_value is not None
            if reachable < self.adc_step_value / 2:
                raise CrossnasError(
                    f"adc.range_mode 'fixed' with adc.bits={spec.adc_bits}: layer {name} partial sums "
                    f"(at most {reachable:g}) all read as 0 (ADC step {self.adc_step_value:g}); "
                    "use more adc.bits, fewer crossbar.rows or adc.range_mode 'scale'"
                )
        self.fast = self._fast_path_exact()

    # -- configuration -------------------------------------------------------------
    @property
    def conductance(self) -> torch.Tensor:
        """Sampled cell conductances, ``(k, n_arrays, n_slices, n)`` (a view of ``g_blocks``)."""
        p = self.plan
        return self.g_blocks.reshape(p.n_blocks * p.rows, p.n_columns)[: p.k].view(
            p.k, p.n_arrays, p.n_slices, p.n
        )

    @property
    def needs_calibration(self) -> bool:
        """True until a "scale" ADC range has been calibrated."""
        return self.spec.adc_bits is not None and self.adc_step_value is None

    def _set_full_scale(self, full_scale: float) -> None:
        bits = self.spec.adc_bits
        assert bits is not None
        self.full_scale = float(full_scale)
        step = adc_step(full_scale, bits)
        self.adc_step_value = step
        self.g_read = self.g_blocks * (1.0 / step)
        # A partial sum below (top code + 1/2) * step reads without clipping.
        self._may_clip = self._max_partial_sum() >= ((1 << bits) - 0.5) * step

    def _max_partial_sum(self) -> float:
        """The largest partial sum any input can produce on this layer's devices."""
        g = self.g_blocks
        return ((1 << self.spec.dac_bits) - 1) * float(g.sum(1).max()) if g.numel() else 0.0

    def _fast_path_exact(self) -> bool:
        """Whether the ADC provably neither clips nor rounds (so one matmul is exact)."""
        if self.settings.force_general_path:
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
        """Sets a "scale" ADC full scale from this layer's input ``x`` (float, real units)."""
        x_int, _ = self._quantize_input(x)
        values: list[torch.Tensor] = []
        maxima: list[float] = []
        pct = self.settings.adc_scale_percentile
        for rows in self._row_chunks(x_int):
            ps = self._partial_sums(rows)
            if ps.numel() == 0:
                continue
            maxima.append(float(ps.max()))
            if pct < 100:
                flat = ps.reshape(-1)
                stride = max(1, flat.numel() // (1 << 18))
                values.append(flat[::stride].clone())
        if pct < 100 and values:
            sample = torch.cat(values)
            if sample.numel() > _MAX_PERCENTILE_SAMPLES:
                sample = sample[:: math.ceil(sample.numel() / _MAX_PERCENTILE_SAMPLES)]
            full_scale = float(torch.quantile(sample.double(), pct / 100.0))
        else:
            full_scale = max(maxima, default=0.0)
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

    def _row_chunks(self, x_int: torch.Tensor):  # type: ignore[no-untyped-def]
        """Yields ``(m, k)`` integer input rows in chunks (see subclasses)."""
        raise NotImplementedError

    def _rows_per_chunk(self) -> int:
        p = self.plan
        per_row = p.n_input_cycles * p.n_blocks * (p.n_columns + p.rows)
        return max(1, self.settings.chunk_elements // per_row)

    def _digits(self, rows: torch.Tensor) -> torch.Tensor:
        """Input digits laid out for the batched matmul: ``(n_blocks, cycles * m, rows)``."""
        p = self.plan
        m = rows.shape[0]
        pad = p.n_blocks * p.rows - p.k
        ints = rows.to(torch.int32)
        parts = [ints] if not p.signed else [ints.clamp(min=0), (-ints).clamp(min=0)]
        digits = rows.new_empty((p.n_blocks, p.n_input_cycles, m, p.rows))
        mask = (1 << p.dac_bits) - 1
        i = 0
        for part in parts:
            blk = (
                F.pad(part, (0, pad)).view(m, p.n_blocks, p.rows).transpose(0, 1)
            )  # (nb, m, R) view
            for c in range(p.n_cycles):
                digits[:, i] = (blk >> (p.dac_bits * c)) & mask if c else blk & mask
                i += 1
        return digits.view(p.n_blocks, p.n_input_cycles * m, p.rows)

    def _partial_sums(
        self, rows: torch.Tensor, g_blocks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Column partial sums of every crossbar: ``(n_blocks, cycles * m, columns)``."""
        return torch.bmm(self._digits(rows), self.g_blocks if g_blocks is None else g_blocks)

    def _accumulate(self, rows: torch.Tensor) -> torch.Tensor:
        """The integer-unit result ``acc`` of ``(m, k)`` input rows: ``(m, n)``."""
        p = self.plan
        m = rows.shape[0]
        beta = self.beta
        bits, step = self.spec.adc_bits, self.adc_step_value
        if bits is None:
            ps = self._partial_sums(rows)
        else:
            assert step is not None and self.g_read is not None
            # ps / step directly (conductances pre-divided by the power-of-two step: exact)
            ps = self._partial_sums(rows, self.g_read).round_()
            if self._may_clip:
                ps.clamp_(max=float((1 << bits) - 1))
            beta = beta * step
        coef = self.gamma.repeat(p.n_blocks)  # (nb * cycles,), order (block, pass, cycle)
        summed = torch.mv(ps.view(p.n_blocks * p.n_input_cycles, m * p.n_columns).t(), coef)
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

    def extra_repr(self) -> str:
        p = self.plan
        return (
            f"name={self.name!r}, k={p.k}, n={p.n}, w_bits={p.w_bits}, a_bits={p.a_bits}, signed={p.signed}, "
            f"arrays={p.n_arrays}, slices={p.n_slices}, cycles={p.n_input_cycles}, blocks={p.n_blocks}, "
            f"adc_step={self.adc_step_value}, fast={self.fast}"
        )


class PimConv2d(PimLayer):
    """A :class:`QuantConv2d` on simulated crossbars (input ``(B, C, H, W)``)."""

    def __init__(
        self,
        source: QuantConv2d,
        spec: CrossbarSpec,
        settings: PimSimSettings,
        generator: torch.Generator,
        name: str = "",
    ) -> None:
        if source.groups != 1 or source.padding_mode != "zeros" or isinstance(source.padding, str):
            raise CrossnasError(
                f"layer {name}: only groups=1 and numeric zero padding are supported by the PIM simulator"
            )
        super().__init__(source, spec, settings, generator, name)
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

    def _row_chunks(self, x_int: torch.Tensor):  # type: ignore[no-untyped-def]
        ho, wo = self._out_hw(x_int.shape[2], x_int.shape[3])
        images = self._images_per_chunk(ho * wo)
        rows_per = self._rows_per_chunk()
        for i in range(0, x_int.shape[0], images):
            cols = self._unfold(x_int[i : i + images])
            for j in range(0, cols.shape[0], rows_per):
                yield cols[j : j + rows_per]

    def _general(self, x_int: torch.Tensor, step_x: torch.Tensor) -> torch.Tensor:
        b = x_int.shape[0]
        ho, wo = self._out_hw(x_int.shape[2], x_int.shape[3])
        n = self.plan.n
        out = x_int.new_empty((b * ho * wo, n))
        scale = step_x * self.step_w
        start = 0
        for rows in self._row_chunks(x_int):
            torch.mul(self._accumulate(rows), scale, out=out[start : start + rows.shape[0]])
            start += rows.shape[0]
        y = out.view(b, ho * wo, n).transpose(1, 2).reshape(b, n, ho, wo)  # a copy
        del out
        if self.bias is not None:
            y.add_(self.bias.view(1, -1, 1, 1))
        return y


class PimLinear(PimLayer):
    """A :class:`QuantLinear` on simulated crossbars (input ``(..., in_features)``)."""

    def _digital(self, xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
        return F.linear(xq, wq, self.bias)

    def _row_chunks(self, x_int: torch.Tensor):  # type: ignore[no-untyped-def]
        rows = x_int.reshape(-1, self.plan.k)
        step = self._rows_per_chunk()
        for i in range(0, rows.shape[0], step):
            yield rows[i : i + step]

    def _general(self, x_int: torch.Tensor, step_x: torch.Tensor) -> torch.Tensor:
        lead = x_int.shape[:-1]
        scale = step_x * self.step_w
        outs = [self._accumulate(rows) * scale for rows in self._row_chunks(x_int)]
        y = torch.cat(outs, 0) if outs else x_int.new_zeros((0, self.plan.n))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.plan.n)
