"""ArchSpec: string/JSON/vector round trips and validity rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.space import ArchSpec, LayerSpec, arch_to_network_dict, max_pools, random_arch

SPACE = SpaceConfig()


@st.composite
def specs(draw: st.DrawFn) -> ArchSpec:
    card = ArchSpec.gene_cardinalities(SPACE)
    vec = [draw(st.integers(0, int(c) - 1)) for c in card]
    return ArchSpec.decode(vec, SPACE)


@given(specs())
@settings(max_examples=200, deadline=None)
def test_round_trips(spec: ArchSpec) -> None:
    assert ArchSpec.from_string(str(spec)) == spec
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.decode(spec.encode(SPACE), SPACE) == spec
    assert hash(ArchSpec.from_string(str(spec))) == hash(spec)


def test_skip_genes_are_ignored_and_canonical() -> None:
    card = ArchSpec.gene_cardinalities(SPACE)
    a = np.zeros_like(card)
    b = np.zeros_like(card)
    skip = SPACE.blocks.index("skip")
    a[0], b[0] = skip, skip
    b[1:4] = [2, 1, 1]
    a[4] = b[4] = 0
    assert ArchSpec.decode(a, SPACE) == ArchSpec.decode(b, SPACE)
    assert ArchSpec.decode(b, SPACE).encode(SPACE)[1:4].tolist() == [0, 0, 0]


def test_skip_keeps_previous_width() -> None:
    spec = ArchSpec.from_string("V32w5a5-S-R64w7a7-S")
    assert spec.effective_widths(3) == [32, 32, 64, 64]
    assert ArchSpec.from_string("S-V32w5a5").effective_widths(1) == [1, 32]


def test_pool_limit_depends_on_input_size() -> None:
    assert max_pools(8, 2) == 2
    assert max_pools(32, 2) == 4
    space = SpaceConfig(n_layers=3)
    three_pools = ArchSpec.from_string("V32w5a5-V32w5a5-V32w5a5")
    assert three_pools.is_valid(space, 32)
    assert not three_pools.is_valid(space, 8)
    with pytest.raises(CrossnasError, match="pooling blocks"):
        three_pools.validate(space, 8)


def test_invalid_members_are_named() -> None:
    space = SpaceConfig(n_layers=2)
    probs = ArchSpec.from_string("V48w5a5-S").problems(space)
    assert any("width 48" in p for p in probs)
    assert ArchSpec((LayerSpec("skip"), LayerSpec("skip"))).problems(space) == ["needs at least one non-skip layer"]


@pytest.mark.parametrize("text", ["X32w5a5", "V32w5", "V32-S", ""])
def test_bad_strings_raise_one_line(text: str) -> None:
    with pytest.raises(CrossnasError) as info:
        ArchSpec.from_string(text)
    assert "\n" not in str(info.value)


def test_random_arch_is_valid_and_seeded() -> None:
    a = random_arch(SPACE, np.random.default_rng(3), 8)
    b = random_arch(SPACE, np.random.default_rng(3), 8)
    assert a == b and a.is_valid(SPACE, 8)


def test_network_dict_chains_channels_and_uses_block_bits() -> None:
    spec = ArchSpec.from_string("R32w5a7-S-V64w9a5")
    net = arch_to_network_dict(spec, SpaceConfig(n_layers=3), (1, 8, 8), 10)
    convs = [layer for layer in net["layers"] if layer["type"] == "conv"]
    assert [c["in_channels"] for c in convs] == [1, 32, 1, 32, 64]
    assert convs[2]["input_index"] == [-6] and convs[2]["kernel_size"] == 1
    assert {(c["weight_bit"], c["activation_bit"]) for c in convs[:3]} == {(5, 7)}
    fcs = [layer for layer in net["layers"] if layer["type"] == "fc"]
    # 8x8 -> one pool -> 4x4 -> head pool kernel 2 -> 2x2, 64 channels
    assert fcs[0]["in_features"] == 64 * 2 * 2
    assert fcs[-1]["out_features"] == 10
    assert all((f["weight_bit"], f["activation_bit"]) == (9, 9) for f in fcs)


def test_space_config_rejects_bad_choices() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown block"):
        SpaceConfig(blocks=("vgg", "dense"))
    with pytest.raises(ValidationError, match="must not be empty"):
        SpaceConfig(widths=())
    with pytest.raises(ValidationError, match="2..16"):
        SpaceConfig(w_bits=(1, 4))
