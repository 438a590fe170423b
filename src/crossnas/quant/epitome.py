"""Epitome convolution (EPIM, after Neural Epitome Search's channel wrapping).

An epitome ``E`` of shape ``(E_out, E_in, k, k)`` with ``E_out = ceil(C_out / m_out)`` and
``E_in = ceil(C_in / m_in)`` stands for the full kernel

    ``W[o, i] = E[o mod E_out, i mod E_in]``,  ``o < C_out``, ``i < C_in``

(``m_out``, ``m_in``: the output and input wrap factors; 1 = no wrapping). Only ``E`` is
stored on the crossbars. The layer is computed without forming ``W`` (the *chunk-sum
form*, :func:`epitome_conv2d`):

1. :func:`fold_channels`: split the ``C_in`` input channels into ``m_in`` consecutive
   chunks of ``E_in`` channels (the last one zero-padded when ``E_in`` does not divide
   ``C_in``) and add the chunks: ``(B, C_in, H, W) -> (B, E_in, H, W)``. Channel ``j`` of
   the result is ``sum_c x[c * E_in + j]`` over the chunks ``c`` that have that channel.
2. convolve with ``E``: ``(B, E_in, H, W) -> (B, E_out, H', W')``.
3. :func:`expand_channels`: logical output channel ``o`` is epitome output ``o mod E_out``
   (tile ``m_out`` times, keep the first ``C_out``).

This equals ``conv2d(x, W)`` exactly (up to float summation order), since
``sum_i W[o, i] x[i] = sum_j E[o mod E_out, j] sum_{i mod E_in = j} x[i]``. Written with
tensor ops, so autograd accumulates into ``E`` the gradients of all wrapped copies.

Quantization (epitome-aware): the stored tensor ``E`` is fake-quantized per *epitome*
output channel (:func:`crossnas.quant.fake_quant_weight` on ``E``), so all logical
channels wrapped onto one physical column share that column's scale; per-logical-channel
scaling is digital and comes after (the following BatchNorm). Because every row of ``W`` holds
all values of one row of ``E`` (``C_in >= E_in``), the per-channel steps of ``W`` equal
those of ``E``: quantize-then-expand equals expand-then-quantize, integers included, so
the dense expanded layer (:meth:`EpitomeConv2d.expanded_weight`) is an exact equivalent
(what the MNSIM export and dense tools see). The input is fake-quantized *before* the
chunk sum: adding integer activations is exact, it only needs more bits (the ``sum``
datapath, ``hardware.epitome.datapath``) or one crossbar read per chunk (``reactivate``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.quant.modules import QuantConv2d


def epitome_channels(channels: int, wrap: int) -> int:
    """Epitome channels for ``channels`` logical ones wrapped ``wrap`` times: ``ceil(channels / wrap)``."""
    if channels < 1 or wrap < 1:
        raise ValueError(f"channels and wrap must be >= 1, got {channels} and {wrap}")
    return -(-channels // wrap)


def fold_channels(x: torch.Tensor, e_in: int) -> torch.Tensor:
    """Sums the input-channel chunks of width ``e_in``: ``(B, C, ...) -> (B, e_in, ...)``.

    The last chunk is zero-padded when ``e_in`` does not divide ``C``; ``e_in >= C``
    returns ``x`` (zero-padded to ``e_in`` channels when larger).
    """
    c = x.shape[1]
    if e_in == c:
        return x
    n_chunks = -(-c // e_in)
    pad = n_chunks * e_in - c
    if pad:
        x = torch.cat([x, x.new_zeros((x.shape[0], pad, *x.shape[2:]))], dim=1)
    return x.reshape(x.shape[0], n_chunks, e_in, *x.shape[2:]).sum(1)


def expand_channels(y: torch.Tensor, c_out: int) -> torch.Tensor:
    """Logical outputs from epitome outputs: channel ``o`` = ``y[:, o mod E_out]``, ``(B, E_out, ...) -> (B, c_out, ...)``."""
    e_out = y.shape[1]
    if e_out == c_out:
        return y
    reps = -(-c_out // e_out)
    return y.repeat(1, reps, *([1] * (y.dim() - 2)))[:, :c_out]


def expand_epitome(e: torch.Tensor, c_out: int, c_in: int) -> torch.Tensor:
    """The full kernel ``W[o, i] = e[o mod E_out, i mod E_in]``, shape ``(c_out, c_in, k, k)``."""
    e_out, e_in = e.shape[0], e.shape[1]
    reps = (-(-c_out // e_out), -(-c_in // e_in), *([1] * (e.dim() - 2)))
    return e.repeat(*reps)[:c_out, :c_in]


def project_epitome(w: torch.Tensor, out_wrap: int, in_wrap: int) -> torch.Tensor:
    """The epitome nearest to a dense kernel: ``argmin_E ||w - expand_epitome(E)||`` (Frobenius).

    Entry ``E[a, b]`` stands for every ``w[o, i]`` with ``o mod E_out = a`` and
    ``i mod E_in = b``, so the least-squares ``E[a, b]`` is the mean of those entries (a
    partial last chunk simply contributes fewer). ``project_epitome(expand_epitome(E, ...))``
    returns ``E``.

    Args:
        w: dense kernel ``(C_out, C_in, k, k)``.
        out_wrap, in_wrap: the wrap factors (each in 1..the channels).

    Returns:
        ``(ceil(C_out / out_wrap), ceil(C_in / in_wrap), k, k)``.
    """
    c_out, c_in = int(w.shape[0]), int(w.shape[1])
    if not (1 <= out_wrap <= c_out and 1 <= in_wrap <= c_in):
        raise ValueError(f"wraps ({out_wrap}, {in_wrap}) must be in 1..({c_out}, {c_in}), the kernel's channels")
    e_out, e_in = epitome_channels(c_out, out_wrap), epitome_channels(c_in, in_wrap)
    n_out, n_in = -(-c_out // e_out), -(-c_in // e_in)
    padded = w.new_zeros((n_out * e_out, n_in * e_in, *w.shape[2:]))
    padded[:c_out, :c_in] = w
    count = w.new_zeros((n_out * e_out, n_in * e_in))
    count[:c_out, :c_in] = 1
    total = padded.reshape(n_out, e_out, n_in, e_in, *w.shape[2:]).sum((0, 2))
    n = count.reshape(n_out, e_out, n_in, e_in).sum((0, 2))
    return total / n.reshape(e_out, e_in, *([1] * (w.dim() - 2)))


def epitome_conv2d(
    x: torch.Tensor, e: torch.Tensor, c_out: int, stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
) -> torch.Tensor:
    """``conv2d(x, expand_epitome(e, c_out, C_in))`` in the chunk-sum form (module docstring).

    Args:
        x: input ``(B, C_in, H, W)``.
        e: epitome ``(E_out, E_in, k, k)``; ``E_in <= C_in`` and ``E_out <= c_out``.
        c_out: logical output channels.
        stride, padding: as ``F.conv2d``.

    Returns:
        ``(B, c_out, H', W')``.
    """
    if e.shape[1] > x.shape[1] or e.shape[0] > c_out:
        raise ValueError(f"epitome {tuple(e.shape)} is larger than the layer ({c_out} out, {x.shape[1]} in)")
    return expand_channels(F.conv2d(fold_channels(x, e.shape[1]), e, None, stride, padding), c_out)


class EpitomeConv2d(QuantConv2d):
    """A :class:`QuantConv2d` whose stored weight is an epitome (EPIM).

    For the PIM simulator and the cost model the layer is "a ``QuantConv2d`` whose stored
    weight is ``E`` plus the wrap factors": ``weight`` *is* ``E`` (shape
    :attr:`epitome_shape`, fake-quantized per epitome output channel), ``out_wrap`` /
    ``in_wrap`` are the wrap factors, and the forward is
    ``expand_output(conv2d(fold_input(quant_input(x)), quant_weight(E)))``: the crossbar
    holds ``E`` and sees the folded (chunk-summed) quantized input, the digital side copies
    its ``E_out`` outputs to the ``C_out`` logical channels.

    Attributes:
        in_channels, out_channels: the logical channels ``C_in``, ``C_out`` (what the
            layer takes and gives).
        out_wrap, in_wrap: ``m_out``, ``m_in`` (each >= 1, at most the channels).
        weight: the epitome ``E``, ``(ceil(C_out / m_out), ceil(C_in / m_in), k, k)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        out_wrap: int = 1,
        in_wrap: int = 1,
        w_bits: int | None = None,
        a_bits: int | None = None,
        signed_input: bool = False,
    ) -> None:
        for name, wrap, n in (("out_wrap", out_wrap, out_channels), ("in_wrap", in_wrap, in_channels)):
            if not 1 <= wrap <= n:
                raise ValueError(f"{name} must be in 1..{n} (the layer's channels), got {wrap}")
        e_out, e_in = epitome_channels(out_channels, out_wrap), epitome_channels(in_channels, in_wrap)
        super().__init__(e_in, e_out, kernel_size, stride=stride, padding=padding, bias=False,
                         w_bits=w_bits, a_bits=a_bits, signed_input=signed_input)
        # nn.Conv2d sized the weight from (e_in, e_out); the layer's interface is the logical one
        self.in_channels, self.out_channels = in_channels, out_channels
        self.out_wrap, self.in_wrap = out_wrap, in_wrap

    @property
    def epitome_shape(self) -> tuple[int, int, int, int]:
        """``(E_out, E_in, k, k)``: the stored tensor's shape."""
        s = self.weight.shape
        return int(s[0]), int(s[1]), int(s[2]), int(s[3])

    def fold_input(self, x: torch.Tensor) -> torch.Tensor:
        """Input-chunk sum ``(B, C_in, H, W) -> (B, E_in, H, W)`` (:func:`fold_channels`)."""
        return fold_channels(x, self.epitome_shape[1])

    def expand_output(self, y: torch.Tensor) -> torch.Tensor:
        """Logical outputs ``(B, E_out, H', W') -> (B, C_out, H', W')`` (:func:`expand_channels`)."""
        return expand_channels(y, self.out_channels)

    def expanded_weight(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The equivalent dense kernel ``(C_out, C_in, k, k)`` of ``weight`` (default: ``E``)."""
        w = self.weight if weight is None else weight
        return expand_epitome(w, self.out_channels, self.in_channels)

    def to_dense(self) -> QuantConv2d:
        """The equivalent dense :class:`QuantConv2d`: weight :meth:`expanded_weight`, the same
        bits, clip and mode. Its fake-quantized forward equals this layer's (module
        docstring); on crossbars it stores all of ``W``, each wrapped copy in its own cells."""
        dense = QuantConv2d(self.in_channels, self.out_channels, int(self.kernel_size[0]), stride=int(self.stride[0]),
                            padding=int(self.padding[0]), w_bits=self.w_bits, a_bits=self.a_bits,
                            signed_input=self.signed_input)
        with torch.no_grad():
            dense.weight.copy_(self.expanded_weight())
            dense.act_clip.copy_(self.act_clip)
            dense.clip_initialised.copy_(self.clip_initialised)
        dense.weight_noise, dense.weight_noise_abs = self.weight_noise, self.weight_noise_abs
        return dense.to(self.weight.device).train(self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self._quant_input(x)
        wq = self._quant_weight(self.weight)
        return self.expand_output(F.conv2d(self.fold_input(xq), wq, None, self.stride, self.padding))

    def extra_repr(self) -> str:
        e = self.epitome_shape
        return f"{super().extra_repr()}, out_wrap={self.out_wrap}, in_wrap={self.in_wrap}, epitome=({e[0]}, {e[1]})"


def load_dense_state(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Loads a dense twin's ``state_dict`` into ``module`` (in place; returned).

    ``module`` and the twin are the same network except that some convs of ``module`` are
    :class:`EpitomeConv2d`: each such conv's epitome becomes :func:`project_epitome` of
    the twin's kernel (the nearest epitome), everything else (the other weights,
    BatchNorms, activation clips) is copied. The compression route of pruning
    papers: train dense, project, fine-tune.

    Raises:
        ValueError: a name of ``module`` missing from ``state``, or a shape that differs
            other than by the projection.
    """
    epitomes = {f"{name}.weight": mod for name, mod in module.named_modules() if isinstance(mod, EpitomeConv2d)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"the dense state lacks {len(missing)} entries of the model, e.g. {missing[:3]}")
    new = {}
    for key, value in own.items():
        src = state[key]
        if key in epitomes:
            mod = epitomes[key]
            if tuple(src.shape) != (mod.out_channels, mod.in_channels, *value.shape[2:]):
                raise ValueError(f"{key}: dense kernel {tuple(src.shape)} does not fit a "
                                 f"{mod.out_channels}x{mod.in_channels} epitome conv")
            src = project_epitome(src, mod.out_wrap, mod.in_wrap)
        elif src.shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(src.shape)} in the dense state, {tuple(value.shape)} in the model")
        new[key] = src.to(value.dtype)
    module.load_state_dict(new)
    return module


def densify(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every :class:`EpitomeConv2d` replaced by its
    :meth:`~EpitomeConv2d.to_dense` equivalent (``module`` itself is not changed)."""
    if isinstance(module, EpitomeConv2d):
        return module.to_dense()
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, EpitomeConv2d):
                setattr(parent, name, child.to_dense())
    return out
