"""The weight-sharing supernet (single-path one-shot).

Layout: for each choice layer ``i`` and each non-skip block type ``b`` one elastic
block ``blocks[i][b]`` holding max-size weights (``max(widths)`` outputs; inputs
``C_in`` for layer 0, else ``max(C_in, max(widths))``). Blocks of different types do
not share weights (unless ``space.share_convs``: then ``vgg``, ``vgg_nopool`` and
``residual`` at a position hold the same two 3x3 conv modules, each type keeping its own
BatchNorms and the residual its 1x1 shortcut); widths of the same block share by
output-channel prefix. The head is shared by all paths: its first FC's input features are
laid out channel-major over the largest pooled map ``q x q``; a path with a smaller pooled
map uses the columns of its top-left positions (:class:`ElasticHead`).

``net(x, spec)`` runs exactly the path ``spec``; nothing about the path is stored.
In ``train()`` mode BatchNorm uses batch statistics (updating the sliced running
stats), clips are EMA-updated, dropout and the configured weight noise are active; in
``eval()`` mode everything is frozen. :meth:`Supernet.recalibrate` re-estimates one
path's BN statistics and activation clips on given batches, and :meth:`Supernet.extract`
copies one path into a :class:`StaticNet` whose eval output equals ``net(x, spec)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.config.space import SpaceConfig
from crossnas.quant.modules import CLIP_MOMENTUM
from crossnas.space.arch import ArchSpec, LayerSpec, max_pools
from crossnas.supernet.elastic import (
    EVAL_MODE,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    _Mode,
)
from crossnas.supernet.static import (
    ResidualBlock,
    StaticNet,
    VGGBlock,
    build_static,
    head_out_hw,
    head_pool_kernel,
    init_weights,
)


class ElasticVGG(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN-ReLU(-maxpool2x2) with elastic width."""

    def __init__(self, in_max: int, out_max: int, pool: bool) -> None:
        super().__init__()
        self.pool = pool
        self.conv1 = ElasticConv2d(in_max, out_max, 3, 1)
        self.bn1 = ElasticBatchNorm2d(out_max)
        self.conv2 = ElasticConv2d(out_max, out_max, 3, 1)
        self.bn2 = ElasticBatchNorm2d(out_max)

    def forward(self, x: torch.Tensor, layer: LayerSpec, wb: int | None, ab: int | None, signed: bool, mode: _Mode) -> torch.Tensor:
        out, m, mo = layer.width, layer.epitome, layer.epitome_out
        # In-place ReLU: BN's backward needs its input, not its output.
        x = F.relu(self.bn1(self.conv1(x, out, wb, ab, signed, mode, m, mo), mode), inplace=True)
        x = F.relu(self.bn2(self.conv2(x, out, wb, ab, False, mode, m, mo), mode), inplace=True)
        return F.max_pool2d(x, 2, 2) if self.pool else x

    def copy_to(self, dst: VGGBlock, signed: bool) -> None:
        self.conv1.copy_to(dst.conv1, signed)
        self.bn1.copy_to(dst.bn1)
        self.conv2.copy_to(dst.conv2, False)
        self.bn2.copy_to(dst.bn2)


class ElasticResidual(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + 1x1 conv-BN shortcut of the input, sum, ReLU."""

    def __init__(self, in_max: int, out_max: int) -> None:
        super().__init__()
        self.conv1 = ElasticConv2d(in_max, out_max, 3, 1)
        self.bn1 = ElasticBatchNorm2d(out_max)
        self.conv2 = ElasticConv2d(out_max, out_max, 3, 1)
        self.bn2 = ElasticBatchNorm2d(out_max)
        self.shortcut = ElasticConv2d(in_max, out_max, 1, 0)
        self.bn_sc = ElasticBatchNorm2d(out_max)

    def forward(self, x: torch.Tensor, layer: LayerSpec, wb: int | None, ab: int | None, signed: bool, mode: _Mode) -> torch.Tensor:
        out, m, mo = layer.width, layer.epitome, layer.epitome_out
        y = F.relu(self.bn1(self.conv1(x, out, wb, ab, signed, mode, m, mo), mode), inplace=True)
        y = self.bn2(self.conv2(y, out, wb, ab, False, mode, m, mo), mode)
        return F.relu(y + self.bn_sc(self.shortcut(x, out, wb, ab, signed, mode, m, mo), mode), inplace=True)

    def copy_to(self, dst: ResidualBlock, signed: bool) -> None:
        self.conv1.copy_to(dst.conv1, signed)
        self.bn1.copy_to(dst.bn1)
        self.conv2.copy_to(dst.conv2, False)
        self.bn2.copy_to(dst.bn2)
        self.shortcut.copy_to(dst.shortcut, signed)
        self.bn_sc.copy_to(dst.bn_sc)


class ElasticHead(nn.Module):
    """Average pool to ``pool`` x ``pool`` (kernel = map // pool), FC layers, dropout.

    The first FC's weight is laid out as ``(out, C_max, q, q)`` flattened, ``q`` the largest
    pooled map of any path. A path whose pooled map is smaller (``q' < q``: e.g. 3 pools
    turn 28 into 3x3 while other paths pool to 2x2) uses the columns of the top-left
    ``q' x q'`` positions of its channels (:meth:`first_fc_columns`), so feature
    ``(c, y, x)`` meets the same weight column on every path; its static twin copies
    those columns.
    """

    def __init__(self, space: SpaceConfig, c_max: int, q: int, n_classes: int) -> None:
        super().__init__()
        self.pool = space.head.pool
        self.dropout = space.head.dropout
        self.q = q
        self._columns: dict[tuple[int, int, str], torch.Tensor] = {}
        sizes = [c_max * q * q, *space.head.fc, n_classes]
        self.fcs = nn.ModuleList(ElasticLinear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1))

    def forward(self, x: torch.Tensor, wb: int | None, ab: int | None, mode: _Mode) -> torch.Tensor:
        k = head_pool_kernel(x.shape[-1], self.pool)
        if k > 1:
            x = F.avg_pool2d(x, k, k)
        cols = self.first_fc_columns(x.shape[1], x.shape[-1]) if x.shape[-1] < self.q else None
        x = torch.flatten(x, 1)
        last = len(self.fcs) - 1
        for i, fc in enumerate(self.fcs):
            x = fc(x, wb, ab, mode, cols if i == 0 else None)
            if i < last:
                x = F.dropout(F.relu(x), self.dropout, mode.dropout)
        return x

    def first_fc_columns(self, channels: int, q_path: int) -> torch.Tensor:
        """Indices into the first FC's input features used by a path with ``channels``
        channels and a ``q_path x q_path`` pooled map, in its flatten order ``(c, y, x)``
        (memoised: one small tensor per shape)."""
        dev = cast("ElasticLinear", self.fcs[0]).weight.device
        key = (channels, q_path, str(dev))
        cols = self._columns.get(key)
        if cols is None:
            idx = torch.arange(channels * self.q * self.q, device=dev).view(channels, self.q, self.q)
            cols = self._columns[key] = idx[:, :q_path, :q_path].reshape(-1)
        return cols


class Supernet(nn.Module):
    """All architectures of a space in one network; ``net(x, spec)`` runs one path.

    Args:
        space: the search space.
        input_shape: ``(C, H, W)`` of one image.
        n_classes: number of classes.
        weight_noise: relative Gaussian weight noise σ (std ``σ·|w|``) applied in training
            forwards (0 = off), on the fake-quantized weights.
        weight_noise_abs: state-independent Gaussian weight noise σ (std ``σ·max|w|`` of
            each output channel), likewise (0 = off); see :func:`crossnas.quant.add_weight_noise`.

    Attributes:
        space, input_shape, n_classes, weight_noise, weight_noise_abs: as given.
        blocks: ``nn.ModuleList`` over choice layers of ``nn.ModuleDict`` block type →
            elastic block (no entry for ``skip``).
        head: the shared classifier head.
    """

    def __init__(
        self,
        space: SpaceConfig,
        input_shape: tuple[int, int, int],
        n_classes: int,
        *,
        weight_noise: float = 0.0,
        weight_noise_abs: float = 0.0,
    ) -> None:
        super().__init__()
        self.space = space
        self.input_shape = cast("tuple[int, int, int]", tuple(int(v) for v in input_shape))
        self.n_classes = int(n_classes)
        self.weight_noise = float(weight_noise)
        self.weight_noise_abs = float(weight_noise_abs)
        c_in, hw = self.input_shape[0], self.input_shape[1]
        w_max = space.max_width
        self.blocks = nn.ModuleList()
        for i in range(space.n_layers):
            in_max = c_in if i == 0 else max(c_in, w_max)
            d = nn.ModuleDict()
            for b in space.blocks:
                if b in ("vgg", "vgg_nopool"):
                    d[b] = ElasticVGG(in_max, w_max, pool=b == "vgg")
                elif b == "residual":
                    d[b] = ElasticResidual(in_max, w_max)
            self.blocks.append(d)
        if space.share_convs:
            for dd in self._block_dicts():
                conv_types = [b for b in ("vgg", "vgg_nopool", "residual") if b in dd]
                first: Any = dd[conv_types[0]]
                for b in conv_types[1:]:  # the same modules: one set of parameters and clips
                    other: Any = dd[b]
                    other.conv1, other.conv2 = first.conv1, first.conv2
        n_pool_max = max_pools(hw, space.head.pool) if "vgg" in space.blocks else 0
        q = max(head_out_hw(hw >> p, space.head.pool) for p in range(n_pool_max + 1))
        self.head = ElasticHead(space, w_max, q, n_classes)
        init_weights(self)

    # ---- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of the path ``spec`` for images ``(B, C, H, W)``."""
        if self.training:
            mode = _Mode(True, 0.1, True, CLIP_MOMENTUM, True, self.weight_noise, self.weight_noise_abs)
        else:
            mode = EVAL_MODE
        return self._run(x, spec, mode)

    def _block_dicts(self) -> Iterable[nn.ModuleDict]:
        """``self.blocks``: per choice layer, a ``ModuleDict`` of its candidate blocks."""
        return cast("Iterable[nn.ModuleDict]", self.blocks)

    def _run(self, x: torch.Tensor, spec: ArchSpec, mode: _Mode) -> torch.Tensor:
        if len(spec.layers) != len(self.blocks):
            raise ValueError(f"arch has {len(spec.layers)} layers, the supernet {len(self.blocks)}")
        quant = self.space.quantize
        signed = True
        for layer, d in zip(spec.layers, self._block_dicts(), strict=True):
            if layer.block == "skip":
                continue
            wb, ab = (layer.w_bits, layer.a_bits) if quant else (None, None)
            x = d[layer.block](x, layer, wb, ab, signed, mode)
            signed = False
        hb = (self.space.head_w_bits, self.space.head_a_bits) if quant else (None, None)
        return self.head(x, hb[0], hb[1], mode)

    @torch.no_grad()
    def recalibrate(self, spec: ArchSpec, batches: Iterable[torch.Tensor]) -> None:
        """Re-estimates the BN statistics and activation clips of path ``spec``.

        Each batch runs with batch-statistics BN and cumulative averaging (momentum
        ``1/(i+1)`` for batch ``i``), so the result is the mean over the batches of the
        batch mean/variance/max|x|, independent of earlier values. Dropout and weight
        noise are off. Only the path's slices change.

        Args:
            spec: the path.
            batches: input batches ``(B, C, H, W)`` on the supernet's device.
        """
        for i, xb in enumerate(batches):
            m = 1.0 / (i + 1)
            self._run(xb, spec, _Mode(True, m, True, m, False, 0.0))

    # ---- extraction -----------------------------------------------------------------------
    def extract(self, spec: ArchSpec) -> StaticNet:
        """A static copy of path ``spec`` (eval mode, on the supernet's device).

        The copy's eval output equals ``net.eval()(x, spec)`` (same ops on the same values).

        Raises:
            CrossnasError: ``spec`` is not valid for this space and input size.
        """
        static = build_static(spec, self.space, self.input_shape, self.n_classes)
        it = iter(static.features)
        signed = True
        for layer, d in zip(spec.layers, self._block_dicts(), strict=True):
            if layer.block == "skip":
                continue
            block: Any = d[layer.block]  # ElasticVGG or ElasticResidual, copying into its static twin
            block.copy_to(next(it), signed)
            signed = False
        fcs = [m for m in static.head if isinstance(m, nn.Linear)]
        channels = spec.effective_widths(self.input_shape[0])[-1]
        q_path = head_out_hw(self.input_shape[1] >> spec.n_pools, self.space.head.pool)
        cols = self.head.first_fc_columns(channels, q_path) if q_path < self.head.q else None
        for i, (src, dst) in enumerate(zip(cast("Iterable[ElasticLinear]", self.head.fcs), fcs, strict=True)):
            src.copy_to(dst, cols if i == 0 else None)
        dev = next(self.parameters()).device
        return static.to(dev).eval()
