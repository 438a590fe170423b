"""Static (single-architecture) networks: what ``extract`` and ``build_static`` return.

Every conv and linear layer is a :class:`crossnas.quant.QuantConv2d` /
:class:`crossnas.quant.QuantLinear` (the PIM simulator swaps exactly these), the rest is
plain ``BatchNorm2d``/``ReLU``/``MaxPool2d``/``Dropout``/``Flatten``. There is no
data-dependent control flow, so ``torch.fx.symbolic_trace`` and forward hooks see every
layer.

Structure of :class:`StaticNet` (mirrors :func:`crossnas.space.arch_to_network_dict`):

* ``features``: one block per non-skip choice layer (skips are dropped: the identity).
  ``vgg``/``vgg_nopool`` = :class:`VGGBlock` (conv3x3-BN-ReLU-conv3x3-BN-ReLU[-maxpool2x2]),
  ``residual`` = :class:`ResidualBlock` (conv3x3-BN-ReLU-conv3x3-BN, plus a 1x1 conv-BN
  shortcut reading the block input, sum, ReLU; the BN on the shortcut is the paper
  code's ``bn3``: without it the un-normalised shortcut made supernet activations grow
  with depth). Convolutions have no bias.
* ``head``: average pool with kernel = stride = ``map // head.pool`` (omitted when the
  map already is ``head.pool`` wide; for maps divisible by ``head.pool`` this is the
  paper code's ``AdaptiveAvgPool2d``), flatten, then for each hidden size
  FC-ReLU-Dropout, then FC to the classes. The MNSIM network description
  (:func:`crossnas.space.arch_to_network_dict`) writes this pool as MAX with the same
  kernel; pooling has no weights and the cost model charges both modes alike. Average
  pooling was chosen because max pooling over windows of 1, 4 or 16 pixels (paths
  with 0, 1 or 2 pooling blocks on 8x8 inputs) hands the shared head features of very
  different scale, which measurably slowed supernet training.

Quantization: a block's ``w_bits``/``a_bits`` apply to all its convs; the head uses the
space's head bits. Epitomes: a block with epitome gene ``m > 1`` makes each of its convs
(the shortcut included) an :class:`crossnas.quant.EpitomeConv2d` (a ``QuantConv2d``
subclass whose weight is the epitome) with the wraps of
:func:`crossnas.space.arch.epitome_wraps`; a conv whose wraps both clamp to 1 stays a
plain ``QuantConv2d``. The conv(s) reading the network input (the first non-skip block's
first conv and shortcut) quantize a *signed* input; every other input follows a ReLU
and is unsigned. With ``space.quantize = False`` all bits are ``None`` (float).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import cast

import torch
from torch import nn

from crossnas.config.space import SpaceConfig
from crossnas.quant import EpitomeConv2d, QuantConv2d, QuantLinear
from crossnas.space.arch import ArchSpec, LayerSpec, epitome_wraps


def head_pool_kernel(hw: int, pool: int) -> int:
    """Head max-pool kernel (= stride) for an ``hw`` map; 1 means no pooling."""
    return hw // pool if hw > pool else 1


def head_out_hw(hw: int, pool: int) -> int:
    """Map size after the head pool."""
    k = head_pool_kernel(hw, pool)
    return hw if k == 1 else (hw - k) // k + 1


def init_weights(module: nn.Module) -> None:
    """The one weight init of supernets and static models (deterministic under a seed).

    Convs: Kaiming normal (fan_out, ReLU); linear: Kaiming normal (fan_in, ReLU), bias
    uniform as ``nn.Linear``; BN: weight 1, bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) or (hasattr(m, "is_elastic_conv") and isinstance(getattr(m, "weight", None), nn.Parameter)):
            nn.init.kaiming_normal_(cast(torch.Tensor, m.weight), mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear) or hasattr(m, "is_elastic_linear"):
            weight = cast(torch.Tensor, m.weight)
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
            if getattr(m, "bias", None) is not None:
                fan_in = weight.shape[1]
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(cast(torch.Tensor, m.bias), -bound, bound)
        elif isinstance(m, nn.BatchNorm2d) or hasattr(m, "is_elastic_bn"):
            nn.init.ones_(cast(torch.Tensor, m.weight))
            nn.init.zeros_(cast(torch.Tensor, m.bias))


def _bits(space: SpaceConfig, layer: LayerSpec | None) -> tuple[int | None, int | None]:
    if not space.quantize:
        return None, None
    if layer is None:
        return space.head_w_bits, space.head_a_bits
    return layer.w_bits, layer.a_bits


def quant_conv(
    cin: int, cout: int, kernel_size: int, padding: int, *, epitome: int = 1, w_bits: int | None,
    a_bits: int | None, signed_input: bool = False, epitome_out: int | None = None,
) -> QuantConv2d:
    """A block's conv: a :class:`QuantConv2d`, or an :class:`EpitomeConv2d` when the
    block's epitome gene wraps it (``epitome_wraps(epitome, cin, cout, epitome_out) != (1, 1)``)."""
    m_out, m_in = epitome_wraps(epitome, cin, cout, epitome_out)
    if (m_out, m_in) == (1, 1):
        return QuantConv2d(cin, cout, kernel_size, padding=padding, w_bits=w_bits, a_bits=a_bits,
                           signed_input=signed_input)
    return EpitomeConv2d(cin, cout, kernel_size, padding=padding, out_wrap=m_out, in_wrap=m_in, w_bits=w_bits,
                         a_bits=a_bits, signed_input=signed_input)


class VGGBlock(nn.Sequential):
    """conv3x3-BN-ReLU-conv3x3-BN-ReLU, then maxpool2x2 (``pool=True``) or nothing."""

    conv1: QuantConv2d  # named children (the Sequential's entries)
    bn1: nn.BatchNorm2d
    conv2: QuantConv2d
    bn2: nn.BatchNorm2d

    def __init__(
        self, cin: int, cout: int, *, w_bits: int | None, a_bits: int | None, signed_input: bool, pool: bool,
        epitome: int = 1, epitome_out: int | None = None,
    ) -> None:
        mods: dict[str, nn.Module] = {
            "conv1": quant_conv(cin, cout, 3, 1, epitome=epitome, w_bits=w_bits, a_bits=a_bits,
                                signed_input=signed_input, epitome_out=epitome_out),
            "bn1": nn.BatchNorm2d(cout),
            "relu1": nn.ReLU(),
            "conv2": quant_conv(cout, cout, 3, 1, epitome=epitome, w_bits=w_bits, a_bits=a_bits,
                                epitome_out=epitome_out),
            "bn2": nn.BatchNorm2d(cout),
            "relu2": nn.ReLU(),
        }
        if pool:
            mods["pool"] = nn.MaxPool2d(2, 2)
        super().__init__(OrderedDict(mods))


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + 1x1 conv shortcut (reads the block input), sum, ReLU."""

    def __init__(
        self, cin: int, cout: int, *, w_bits: int | None, a_bits: int | None, signed_input: bool, epitome: int = 1,
        epitome_out: int | None = None,
    ) -> None:
        super().__init__()
        m, mo, wb, ab = epitome, epitome_out, w_bits, a_bits
        self.conv1 = quant_conv(cin, cout, 3, 1, epitome=m, w_bits=wb, a_bits=ab, signed_input=signed_input,
                                epitome_out=mo)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = quant_conv(cout, cout, 3, 1, epitome=m, w_bits=wb, a_bits=ab, epitome_out=mo)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = quant_conv(cin, cout, 1, 0, epitome=m, w_bits=wb, a_bits=ab, signed_input=signed_input,
                                   epitome_out=mo)
        self.bn_sc = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(out + self.bn_sc(self.shortcut(x)))


class StaticNet(nn.Module):
    """One architecture as a plain module: ``head(features(x))``.

    Attributes:
        arch: the architecture's string form.
        features: ``nn.Sequential`` of blocks (one per non-skip layer).
        head: ``nn.Sequential`` (pool, flatten, FC layers).
    """

    def __init__(self, arch: str, features: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__()
        self.arch = arch
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(B, n_classes)``, for images ``(B, C, H, W)``."""
        return self.head(self.features(x))


def build_head(space: SpaceConfig, channels: int, hw: int, n_classes: int) -> nn.Sequential:
    """The classifier head for a ``channels`` x ``hw`` x ``hw`` feature map."""
    w_bits, a_bits = _bits(space, None)
    mods: dict[str, nn.Module] = {}
    k = head_pool_kernel(hw, space.head.pool)
    if k > 1:
        mods["pool"] = nn.AvgPool2d(k, k)
    mods["flatten"] = nn.Flatten()
    sizes = [channels * head_out_hw(hw, space.head.pool) ** 2, *space.head.fc, n_classes]
    for i in range(len(sizes) - 1):
        mods[f"fc{i + 1}"] = QuantLinear(sizes[i], sizes[i + 1], w_bits=w_bits, a_bits=a_bits)
        if i < len(sizes) - 2:
            mods[f"relu{i + 1}"] = nn.ReLU()
            mods[f"drop{i + 1}"] = nn.Dropout(space.head.dropout)
    return nn.Sequential(OrderedDict(mods))


def build_static(
    spec: ArchSpec, space: SpaceConfig, input_shape: tuple[int, int, int], n_classes: int
) -> StaticNet:
    """A fresh (randomly initialised, train mode) static network for ``spec``.

    Args:
        spec: a valid architecture of ``space`` (validated against the input size).
        space: the search space (head sizes, head bits, ``quantize``).
        input_shape: ``(C, H, W)`` of one image.
        n_classes: outputs.

    Raises:
        CrossnasError: ``spec`` is not valid for ``space`` and this input size.
    """
    c, h, _w = (int(v) for v in input_shape)
    spec.validate(space, h)
    blocks: list[nn.Module] = []
    cur_c, cur_hw, signed = c, h, True
    for layer in spec.layers:
        if layer.block == "skip":
            continue
        w_bits, a_bits = _bits(space, layer)
        if layer.block in ("vgg", "vgg_nopool"):
            pool = layer.block == "vgg"
            blocks.append(VGGBlock(cur_c, layer.width, w_bits=w_bits, a_bits=a_bits, signed_input=signed, pool=pool,
                                   epitome=layer.epitome, epitome_out=layer.epitome_out))
            if pool:
                cur_hw //= 2
        elif layer.block == "residual":
            blocks.append(ResidualBlock(cur_c, layer.width, w_bits=w_bits, a_bits=a_bits, signed_input=signed,
                                        epitome=layer.epitome, epitome_out=layer.epitome_out))
        else:  # pragma: no cover - SpaceConfig validates block names
            raise ValueError(f"unknown block {layer.block}")
        cur_c, signed = layer.width, False
    net = StaticNet(str(spec), nn.Sequential(*blocks), build_head(space, cur_c, cur_hw, n_classes))
    init_weights(net)
    return net
