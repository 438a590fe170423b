"""Supernet weight layout across paths: the head's first FC on maps of different sizes,
and ``space.share_convs`` (one pair of 3x3 convs per position for all conv block types)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_supernet_network import _trained as trained_supernet

from crossnas.config.space import SpaceConfig
from crossnas.space.arch import ArchSpec, random_arch
from crossnas.supernet import Supernet
from crossnas.supernet.static import head_pool_kernel

# 12x12 inputs with a 2x2 head: 0-1 pools leave a 12 or 6 map (pooled to 2x2), 2 pools
# leave 3x3 (no head pool, 3x3 into the FC). Paths of one supernet feed the FC 2x2 or 3x3.
SHAPE = (1, 12, 12)


def _space(quantize: bool = False, share: bool = False) -> SpaceConfig:
    return SpaceConfig(n_layers=3, widths=(4, 8), w_bits=(3, 5), a_bits=(4, 6), head={"fc": (), "dropout": 0.0},
                       quantize=quantize, share_convs=share)


def _trained(space: SpaceConfig, seed: int = 0) -> Supernet:
    return trained_supernet(space, seed, SHAPE)


def test_head_feature_meets_the_same_weight_column_on_every_path() -> None:
    net = _trained(_space())
    assert net.head.q == 3
    # Only the column of feature (channel 1, row 0, col 0) in the 3x3 layout is non-zero.
    # (In a plain prefix layout a 2x2 path's feature index 9 would be (channel 2, 0, 1).)
    fc = net.head.fcs[0]
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[:, 1 * 9 + 0 * 3 + 0] = torch.arange(1.0, 11.0)
    x = torch.randn(8, *SHAPE)
    for arch, q_path in (("V8w5a6-S-S", 2), ("v8w5a6-R8w3a4-S", 2), ("V8w5a6-V8w3a4-v4w5a6", 3)):
        spec = ArchSpec.from_string(arch)
        static = net.extract(spec)
        with torch.no_grad():
            feats = static.features(x)
            k = head_pool_kernel(feats.shape[-1], 2)
            pooled = F.avg_pool2d(feats, k, k) if k > 1 else feats
            assert pooled.shape[-1] == q_path
            want = pooled[:, 1, 0, 0, None] * torch.arange(1.0, 11.0)
            assert torch.allclose(net(x, spec), want, atol=1e-6), arch
            assert torch.allclose(static(x), want, atol=1e-6), arch


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("quantize", [False, True])
def test_extract_equals_supernet_path_on_mixed_head_sizes(quantize: bool, share: bool) -> None:
    space = _space(quantize, share)
    net = _trained(space, seed=3)
    rng = np.random.default_rng(7)
    x = torch.randn(16, *SHAPE) * 1.5
    sizes = set()
    for _ in range(12):
        spec = random_arch(space, rng, SHAPE[1])
        sizes.add(spec.n_pools)
        with torch.no_grad():
            assert (net(x, spec) - net.extract(spec)(x)).abs().max().item() <= 1e-5, str(spec)
    assert sizes >= {0, 2} or sizes >= {1, 2}  # both head sizes were exercised


@pytest.mark.parametrize("share", [False, True])
def test_share_convs_ties_the_conv_block_types_at_a_position(share: bool) -> None:
    space = _space(share=share)
    torch.manual_seed(0)
    net = Supernet(space, SHAPE, 10)
    before = {b: net.blocks[0][b].conv1.weight.detach().clone() for b in ("vgg", "vgg_nopool", "residual")}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    loss = F.cross_entropy(net(torch.randn(16, *SHAPE), ArchSpec.from_string("v8w5a6-S-S")), torch.arange(16) % 10)
    loss.backward()
    opt.step()
    changed = {b: not torch.equal(net.blocks[0][b].conv1.weight, w) for b, w in before.items()}
    assert changed["vgg_nopool"]
    assert changed["vgg"] is share and changed["residual"] is share
    # the BatchNorms and the residual shortcut stay private to their type
    assert net.blocks[0]["vgg"].bn1 is not net.blocks[0]["vgg_nopool"].bn1
    assert net.blocks[0]["residual"].shortcut.weight.grad is None
    n_params = sum(p.numel() for p in net.parameters())
    dense = sum(p.numel() for p in Supernet(_space(share=False), SHAPE, 10).parameters())
    assert (n_params < dense) is share


def test_share_convs_survives_a_state_dict_round_trip() -> None:
    space = _space(quantize=True, share=True)
    net = _trained(space, seed=5)
    twin = Supernet(space, SHAPE, 10)
    twin.load_state_dict(net.state_dict())
    twin.eval()
    assert twin.blocks[1]["residual"].conv2 is twin.blocks[1]["vgg"].conv2
    x = torch.randn(8, *SHAPE)
    spec = ArchSpec.from_string("R8w5a6-v4w3a4-V8w3a6")
    with torch.no_grad():
        assert torch.equal(twin(x, spec), net(x, spec))


def test_share_convs_is_left_out_of_dumps_at_its_default() -> None:
    assert "share_convs" not in _space().model_dump()
    assert _space(share=True).model_dump()["share_convs"] is True
    with pytest.raises(ValueError, match="share_convs"):
        SpaceConfig(share_convs="sometimes")  # type: ignore[arg-type]
