"""A timing stand-in for the published CrossNAS supernet (not used by crossnas itself).

Written from the published code's *structure*, as facts, to time it next to ours in one
run on the same machine: per choice layer three blocks holding 128-wide weights; the
active path slices the first ``k`` output (and input) channels; plain NCHW tensors;
``F.conv2d`` on the slices (with a bias in the two VGG blocks, none in the residual one);
``F.batch_norm`` in batch-statistics mode on the sliced statistics; in-place ReLU; 2x2
max pool; adaptive average pool to 2x2; FC 200 (sliced on its input) -> FC 50 -> classes,
dropout 0.2 after the first two.

Its path sampler, also as described by the published code: the number of non-skip layers
``L`` is uniform in 1..8, each of them one of (vgg, vgg_nopool, residual) uniformly,
redrawn while more than 4 are pooling; the remaining layers are skips at the end; each
layer's width is uniform in {32, 64, 128}.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossnas.space.arch import ArchSpec, LayerSpec

WIDTHS = (32, 64, 128)
_BLOCKS = ("vgg", "vgg_nopool", "residual")


def published_path(rng: np.random.Generator, n_layers: int = 8, max_pools: int = 4) -> ArchSpec:
    """One path drawn the way the published code draws them (9-bit tags are ignored)."""
    while True:
        blocks = [int(b) for b in rng.integers(0, 3, size=int(rng.integers(1, n_layers + 1)))]
        if blocks.count(0) <= max_pools:
            break
    layers = [LayerSpec(_BLOCKS[b], WIDTHS[int(rng.integers(0, 3))], 9, 9) for b in blocks]
    layers += [LayerSpec("skip")] * (n_layers - len(blocks))
    return ArchSpec(tuple(layers))


class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k) * (2.0 / (cin * k * k)) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.pad = k // 2

    def forward(self, x: torch.Tensor, cout: int) -> torch.Tensor:
        cin = x.shape[1]
        b = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, self.weight[:cout, :cin], b, padding=self.pad)


class _BN(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c], training=True)


class _Block(nn.Module):
    def __init__(self, kind: str, cin: int, cout: int) -> None:
        super().__init__()
        self.kind = kind
        plain = kind != "residual"
        self.c1, self.b1 = _Conv(cin, cout, 3, plain), _BN(cout)
        self.c2, self.b2 = _Conv(cout, cout, 3, plain), _BN(cout)
        if not plain:
            self.c3, self.b3 = _Conv(cin, cout, 1, False), _BN(cout)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        y = self.relu(self.b1(self.c1(x, k)))
        y = self.b2(self.c2(y, k))
        if self.kind == "residual":
            return self.relu(y + self.b3(self.c3(x, k)))
        y = self.relu(y)
        return self.pool(y) if self.kind == "vgg" else y


class PublishedStyleSupernet(nn.Module):
    """The published supernet's layer structure, for timing only."""

    def __init__(self, n_layers: int = 8, in_ch: int = 3, n_classes: int = 10) -> None:
        super().__init__()
        w = max(WIDTHS)
        self.layers = nn.ModuleList(
            nn.ModuleDict({b: _Block(b, in_ch if i == 0 else w, w) for b in _BLOCKS}) for i in range(n_layers)
        )
        self.gap = nn.AdaptiveAvgPool2d((2, 2))
        self.fc1 = nn.Parameter(torch.randn(200, 4 * w) * 0.01)
        self.fc2 = nn.Linear(200, 50)
        self.out = nn.Linear(50, n_classes)
        self.drop = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        for layer, blocks in zip(spec.layers, self.layers, strict=True):
            if layer.block != "skip":
                x = blocks[layer.block](x, layer.width)
        x = torch.flatten(self.gap(x), 1)
        x = self.drop(F.relu(F.linear(x, self.fc1[:, : x.shape[1]]), inplace=True))
        x = self.drop(F.relu(self.fc2(x), inplace=True))
        return self.out(x)
