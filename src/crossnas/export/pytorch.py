"""A standalone PyTorch export: one ``model.py`` that imports only torch, plus weights.

``model.py`` rebuilds the exact module tree of crossnas's static network (same
parameter and buffer names, same fake quantization), so ``weights.pt`` loads into it
with ``load_state_dict``. The dataset's input normalisation is part of the exported
module: it takes *raw* images (:data:`crossnas.data.RAW_INPUT`: digits pixel / 16, CIFAR
pixel / 255, both 0..1) and computes ``(x - mean) / std`` first, so its outputs on raw
images equal crossnas's on the loader's normalised ones. ``build(normalize_input=False)``
(or ``net.normalize_input = False``) skips that step for inputs already normalised.
Usage::

    import torch, model
    net = model.build()
    net.load_state_dict(torch.load("weights.pt", weights_only=True))
"""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crossnas.config.data import DataConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.space.arch import ArchSpec, LayerSpec
from crossnas.utils.io import save_torch, write_json, write_text

_TEMPLATE = '''"""Standalone export of a crossnas network ({arch}).

Needs only PyTorch. Weights are fake-quantized per output channel (signed, symmetric);
layer inputs are fake-quantized with a calibrated clip (unsigned after ReLU, signed for
the network input), exactly as in crossnas. Build with ``build()``, then
``load_state_dict(torch.load("weights.pt", weights_only=True))``.

Input: raw images, {raw_input}.
The module normalises them itself, ``(x - input_mean) / input_std`` per channel with the
training data's constants (``CONFIG["normalization"]``; buffers ``input_mean`` and
``input_std``, not part of ``weights.pt``). For inputs that are already normalised, build
with ``build(normalize_input=False)`` or set ``net.normalize_input = False``. This export's
``build()`` defaults to ``normalize_input={normalize_default}``.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

CONFIG = {config}


def _round_ste(x):
    return x + (torch.round(x) - x).detach()


def _fq_weight(w, bits):
    if bits is None:
        return w
    q = (1 << (bits - 1)) - 1
    step = w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(1e-8) / q
    return torch.clamp(_round_ste(w / step), -q, q) * step


def _fq_act(x, bits, clip, signed):
    if bits is None:
        return x
    q = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    step = clip.clamp_min(1e-8) / q
    return _round_ste(torch.clamp(x / step, -q if signed else 0, q)) * step


class _Quant:
    def _setup(self, w_bits, a_bits, signed_input):
        self.w_bits, self.a_bits, self.signed_input = w_bits, a_bits, signed_input
        self.register_buffer("act_clip", torch.ones(()))
        self.register_buffer("clip_initialised", torch.zeros((), dtype=torch.bool))

    def _qin(self, x):
        if self.a_bits is not None and self.training:
            with torch.no_grad():
                m = x.detach().abs().amax()
                if bool(self.clip_initialised):
                    self.act_clip.mul_(0.9).add_(0.1 * m)
                else:
                    self.act_clip.copy_(m)
                    self.clip_initialised.fill_(True)
        return _fq_act(x, self.a_bits, self.act_clip, self.signed_input)


class QuantConv2d(_Quant, nn.Conv2d):
    def __init__(self, cin, cout, k, padding=0, w_bits=None, a_bits=None, signed_input=False):
        nn.Conv2d.__init__(self, cin, cout, k, padding=padding, bias=False)
        self._setup(w_bits, a_bits, signed_input)

    def forward(self, x):
        return F.conv2d(self._qin(x), _fq_weight(self.weight, self.w_bits), self.bias, self.stride, self.padding)


class EpitomeConv2d(QuantConv2d):
    """A conv whose weight is an epitome E (EPIM): the full kernel is
    W[o, i] = E[o mod E_out, i mod E_in]. Computed as: add the input-channel chunks of
    width E_in (the last one zero-padded), convolve with E, copy output o from o mod E_out."""

    def __init__(self, cin, cout, k, padding=0, w_bits=None, a_bits=None, signed_input=False, wraps=(1, 1)):
        e_out, e_in = -(-cout // wraps[0]), -(-cin // wraps[1])
        QuantConv2d.__init__(self, e_in, e_out, k, padding, w_bits, a_bits, signed_input)
        self.in_channels, self.out_channels = cin, cout

    def forward(self, x):
        x = self._qin(x)
        e_out, e_in = self.weight.shape[:2]
        chunks = -(-x.shape[1] // e_in)
        if chunks * e_in != x.shape[1]:
            x = torch.cat([x, x.new_zeros((x.shape[0], chunks * e_in - x.shape[1], *x.shape[2:]))], 1)
        x = x.reshape(x.shape[0], chunks, e_in, *x.shape[2:]).sum(1)
        y = F.conv2d(x, _fq_weight(self.weight, self.w_bits), None, self.stride, self.padding)
        return y.repeat(1, -(-self.out_channels // e_out), 1, 1)[:, :self.out_channels]


def _conv(b, name, cin, cout, k, padding, signed=False):
    wraps = b.get("epitome", {{}}).get(name)
    if wraps:
        return EpitomeConv2d(cin, cout, k, padding, b["w_bits"], b["a_bits"], signed, tuple(wraps))
    return QuantConv2d(cin, cout, k, padding, b["w_bits"], b["a_bits"], signed)


class QuantLinear(_Quant, nn.Linear):
    def __init__(self, cin, cout, w_bits=None, a_bits=None):
        nn.Linear.__init__(self, cin, cout)
        self._setup(w_bits, a_bits, False)

    def forward(self, x):
        return F.linear(self._qin(x), _fq_weight(self.weight, self.w_bits), self.bias)


def _vgg(b):
    mods = [("conv1", _conv(b, "conv1", b["cin"], b["cout"], 3, 1, b["signed"])),
            ("bn1", nn.BatchNorm2d(b["cout"])), ("relu1", nn.ReLU()),
            ("conv2", _conv(b, "conv2", b["cout"], b["cout"], 3, 1)),
            ("bn2", nn.BatchNorm2d(b["cout"])), ("relu2", nn.ReLU())]
    if b["block"] == "vgg":
        mods.append(("pool", nn.MaxPool2d(2, 2)))
    return nn.Sequential(OrderedDict(mods))


class ResidualBlock(nn.Module):
    def __init__(self, b):
        super().__init__()
        self.conv1 = _conv(b, "conv1", b["cin"], b["cout"], 3, 1, b["signed"])
        self.bn1 = nn.BatchNorm2d(b["cout"])
        self.relu1 = nn.ReLU()
        self.conv2 = _conv(b, "conv2", b["cout"], b["cout"], 3, 1)
        self.bn2 = nn.BatchNorm2d(b["cout"])
        self.shortcut = _conv(b, "shortcut", b["cin"], b["cout"], 1, 0, b["signed"])
        self.bn_sc = nn.BatchNorm2d(b["cout"])
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(out + self.bn_sc(self.shortcut(x)))


class Net(nn.Module):
    def __init__(self, cfg, normalize_input=True):
        super().__init__()
        norm = cfg["normalization"]
        shape = (1, len(norm["mean"]), 1, 1)
        self.register_buffer("input_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(shape),
                             persistent=False)
        self.register_buffer("input_std", torch.tensor(norm["std"], dtype=torch.float32).view(shape),
                             persistent=False)
        self.normalize_input = normalize_input
        self.features = nn.Sequential(*[ResidualBlock(b) if b["block"] == "residual" else _vgg(b)
                                        for b in cfg["blocks"]])
        h = cfg["head"]
        mods = []
        if h["pool_kernel"] > 1:
            mods.append(("pool", nn.AvgPool2d(h["pool_kernel"], h["pool_kernel"])))
        mods.append(("flatten", nn.Flatten()))
        sizes = h["sizes"]
        for i in range(len(sizes) - 1):
            mods.append((f"fc{{i + 1}}", QuantLinear(sizes[i], sizes[i + 1], h["w_bits"], h["a_bits"])))
            if i < len(sizes) - 2:
                mods.append((f"relu{{i + 1}}", nn.ReLU()))
                mods.append((f"drop{{i + 1}}", nn.Dropout(h["dropout"])))
        self.head = nn.Sequential(OrderedDict(mods))

    def forward(self, x):
        if self.normalize_input:
            x = (x - self.input_mean) / self.input_std
        return self.head(self.features(x))


def build(normalize_input={normalize_default}):
    """The network in eval mode (load the weights next).

    ``normalize_input``: ``True``: the module takes raw images and normalises them;
    ``False``: inputs already normalised with ``CONFIG["normalization"]``.
    """
    return Net(CONFIG, normalize_input).eval()
'''


def export_config(spec: ArchSpec, space: SpaceConfig, input_shape: tuple[int, int, int], n_classes: int,
                  normalization: dict[str, Any]) -> dict[str, Any]:
    """The literal structure description embedded in ``model.py`` (mirrors ``build_static``).

    ``normalization``: ``{"mean": [...], "std": [...], "raw_input": "..."}`` (:func:`normalization_of`).
    A block with epitome convs carries ``"epitome": {conv name: [out_wrap, in_wrap]}`` for
    them (no entry: all dense); ``model.py`` runs them in the chunk-sum form, and
    ``weights.pt`` holds their epitomes, as crossnas's own state dict does.
    """
    from crossnas.supernet.static import head_out_hw, head_pool_kernel

    c, h, _ = input_shape
    q = space.quantize
    blocks, cur_c, cur_hw, signed = [], c, h, True
    for layer in spec.layers:
        if layer.block == "skip":
            continue
        blocks.append({"block": layer.block, "cin": cur_c, "cout": layer.width,
                       "w_bits": layer.w_bits if q else None, "a_bits": layer.a_bits if q else None, "signed": signed,
                       **_epitome_entry(layer, cur_c)})
        if layer.block == "vgg":
            cur_hw //= 2
        cur_c, signed = layer.width, False
    head = {"pool_kernel": head_pool_kernel(cur_hw, space.head.pool),
            "sizes": [cur_c * head_out_hw(cur_hw, space.head.pool) ** 2, *space.head.fc, n_classes],
            "w_bits": space.head_w_bits if q else None, "a_bits": space.head_a_bits if q else None,
            "dropout": space.head.dropout}
    return {"arch": str(spec), "input_shape": list(input_shape), "n_classes": n_classes, "blocks": blocks, "head": head,
            "normalization": dict(normalization)}


def _epitome_entry(layer: LayerSpec, cin: int) -> dict[str, Any]:
    """``{"epitome": {conv name: [out_wrap, in_wrap]}}`` for a block's wrapped convs (empty when none is)."""
    convs = {"conv1": (cin, layer.width), "conv2": (layer.width, layer.width)}
    if layer.block == "residual":
        convs["shortcut"] = (cin, layer.width)
    wraps = {name: list(layer.wraps(ci, co)) for name, (ci, co) in convs.items()}
    wraps = {name: w for name, w in wraps.items() if w != [1, 1]}
    return {"epitome": wraps} if wraps else {}


def normalization_of(data_cfg: DataConfig, n_channels: int) -> dict[str, Any]:
    """The input normalisation a model trained on ``data_cfg`` expects: per-channel ``mean``
    and ``std`` (as :func:`crossnas.data.load_data` applies them) and the raw input scale."""
    from crossnas.data import RAW_INPUT, input_normalization

    mean, std = input_normalization(data_cfg)
    if len(mean) != n_channels or len(std) != n_channels:
        raise CrossnasError(f"dataset {data_cfg.dataset!r} normalises {len(mean)} channel(s) but the model takes "
                            f"{n_channels}")
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std], "raw_input": RAW_INPUT[data_cfg.dataset]}


def standalone_source(config: dict[str, Any], normalize_input: bool = True) -> str:
    """Source of the standalone ``model.py`` for one structure description.

    ``normalize_input``: the default of its ``build()`` (raw images in, normalised inside).
    """
    literal = pprint.pformat(config, indent=1, width=100, sort_dicts=False)
    return _TEMPLATE.format(arch=config["arch"], config=literal, raw_input=config["normalization"]["raw_input"],
                            normalize_default=bool(normalize_input))


class NormalizedInput(nn.Module):
    """``module((x - mean) / std)``: a crossnas network that takes raw images (ONNX export)."""

    input_mean: torch.Tensor  # buffers (registered in __init__)
    input_std: torch.Tensor

    def __init__(self, module: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.module = module
        shape = (1, len(mean), 1, 1)
        self.register_buffer("input_mean", torch.tensor(list(mean), dtype=torch.float32).view(shape))
        self.register_buffer("input_std", torch.tensor(list(std), dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module((x - self.input_mean) / self.input_std)


def export_pytorch(model_dir: str | Path, out_dir: str | Path, *, normalize_input: bool = True) -> dict[str, Path]:
    """Writes ``model.py``, ``weights.pt`` and ``model.json`` for a crossnas model directory.

    Args:
        normalize_input: the default of ``model.build()``: take raw images and normalise
            them inside the module (``True``), or take inputs already normalised.
    """
    from crossnas.supernet.modeldir import load_model_dir

    loaded = load_model_dir(model_dir)
    out = Path(out_dir)
    norm = normalization_of(loaded.data_cfg, loaded.input_shape[0])
    cfg = export_config(loaded.spec, loaded.space, loaded.input_shape, loaded.n_classes, norm)
    write_text(out / "model.py", standalone_source(cfg, normalize_input))
    save_torch(out / "weights.pt", {k: v.detach().cpu() for k, v in loaded.module.state_dict().items()})
    write_json(out / "model.json", {"format": "crossnas-export-pytorch/1", **cfg,
                                    "input": f"raw images, {norm['raw_input']}" if normalize_input else
                                             "images already normalised: (raw - mean) / std per channel",
                                    "usage": "import torch, model; net = model.build(); "
                                             "net.load_state_dict(torch.load('weights.pt', weights_only=True))"})
    return {"model": out / "model.py", "weights": out / "weights.pt"}
