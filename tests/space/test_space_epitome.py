"""The epitome gene: arch tokens, vectors, genomes, config, and the network dict the cost model reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.hw import cost_network
from crossnas.search.genome import GenomeSpace
from crossnas.space import ArchSpec, LayerSpec, arch_to_network_dict, epitome_wraps, genes_per_layer

DENSE = SpaceConfig(n_layers=4, widths=(16, 32, 64))
EPIM = SpaceConfig(n_layers=4, widths=(16, 32, 64), epitome=(1, 2, 4))


@st.composite
def specs(draw: st.DrawFn) -> ArchSpec:
    card = ArchSpec.gene_cardinalities(EPIM)
    return ArchSpec.decode([draw(st.integers(0, int(c) - 1)) for c in card], EPIM)


@given(specs().filter(lambda s: s.is_valid(EPIM)))
@settings(max_examples=150, deadline=None)
def test_epitome_specs_round_trip(spec: ArchSpec) -> None:
    assert ArchSpec.from_string(str(spec)) == spec
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.decode(spec.encode(EPIM), EPIM) == spec


def test_token_suffix_only_for_wrapped_blocks() -> None:
    spec = ArchSpec.from_string("V64w7a5e2-S-R32w5a9-v16w9a9e4")
    assert [layer.epitome for layer in spec.layers] == [2, 1, 1, 4]
    assert str(spec) == "V64w7a5e2-S-R32w5a9-v16w9a9e4"
    assert ArchSpec.from_string("V64w7a5e1-S") == ArchSpec.from_string("V64w7a5-S")
    assert str(ArchSpec.from_string("V64w7a5e1-S")) == "V64w7a5-S"  # e1 is never printed
    assert spec.to_json()[0]["epitome"] == 2 and "epitome" not in spec.to_json()[2]
    assert LayerSpec("vgg", 64, 7, 5) == LayerSpec("vgg", 64, 7, 5, 1)
    for bad in ("V64w7a5e0", "V64w7a5e", "V64w7a5e2x", "Se2"):
        with pytest.raises(CrossnasError, match="bad token|epitome"):
            ArchSpec.from_string(bad)


@pytest.mark.parametrize("text", ["V32w9a9-S-R64w5a7-v16w5a5", "S-S-S-R16w7a7", "R16w5a7-V32w9a5-S-V16w7a7"])
def test_old_strings_vectors_and_keys_are_unchanged(text: str) -> None:
    spec = ArchSpec.from_string(text)
    assert str(spec) == text and all(layer.epitome == 1 for layer in spec.layers)
    assert genes_per_layer(DENSE) == 4
    vec = spec.encode(DENSE)
    assert vec.shape == (4 * DENSE.n_layers,)
    assert ArchSpec.decode(vec, DENSE) == spec
    assert "epitome" not in str(spec.to_json())
    assert "epitome" not in DENSE.model_dump(mode="json")  # dumps (stage hashes, model files) as before
    assert "epitome" not in arch_to_network_dict(spec, DENSE, (1, 8, 8), 10).__repr__()


def test_epitome_vector_has_a_fifth_gene_per_layer() -> None:
    spec = ArchSpec.from_string("V64w7a5e4-S-R32w5a9-v16w9a9e2")
    vec = spec.encode(EPIM).reshape(4, 5)
    assert vec[:, 4].tolist() == [2, 0, 0, 1]
    assert ArchSpec.gene_cardinalities(EPIM).reshape(4, 5)[:, 4].tolist() == [3] * 4
    with pytest.raises(CrossnasError, match="needs 20"):
        ArchSpec.decode(np.zeros(16, dtype=np.int64), EPIM)
    only2 = SpaceConfig(n_layers=1, widths=(16,), epitome=(2,))  # one non-dense choice: every block wrapped
    assert ArchSpec.decode([0, 0, 0, 0, 0], only2).layers[0].epitome == 2


def test_validity_names_the_epitome() -> None:
    spec = ArchSpec.from_string("V64w7a5e2-S-S-S")
    assert spec.is_valid(EPIM)
    assert DENSE.epitome == (1,)
    assert spec.problems(DENSE) == ["layer 0: epitome 2 not in [1]"]
    assert "epitome 8 not in [1, 2, 4]" in ArchSpec.from_string("V64w7a5e8-S-S-S").problems(EPIM)[0]


def test_space_config_field() -> None:
    assert SpaceConfig(epitome=(4, 1, 2)).epitome == (1, 2, 4)
    assert EPIM.searches_epitome and not DENSE.searches_epitome
    assert SpaceConfig.model_validate(EPIM.model_dump(mode="json")) == EPIM
    for bad, msg in (((0, 2), "1..64"), ((2, 2), "must not repeat"), ((), "must not be empty"), ((65,), "1..64")):
        with pytest.raises(ValueError, match=msg):
            SpaceConfig(epitome=bad)


def test_wraps_are_clamped_to_the_channels() -> None:
    assert epitome_wraps(4, 1, 16) == (4, 1)  # a 1-channel image input is not input-wrapped
    assert epitome_wraps(4, 3, 16) == (4, 3)
    assert epitome_wraps(2, 32, 16) == (2, 2)
    assert epitome_wraps(1, 32, 16) == (1, 1)


def _convs(net: dict) -> list[dict]:
    return [layer for layer in net["layers"] if layer["type"] == "conv"]


def test_network_dict_carries_the_epitome_on_every_conv_of_a_wrapped_block() -> None:
    spec = ArchSpec.from_string("R16w7a7e4-V32w7a7-S-v64w7a7e2")
    convs = _convs(arch_to_network_dict(spec, EPIM, (1, 8, 8), 10))
    assert [c.get("epitome") for c in convs] == [
        {"out_wrap": 4, "in_wrap": 1},  # residual conv1 reads the 1-channel image
        {"out_wrap": 4, "in_wrap": 4},  # conv2
        {"out_wrap": 4, "in_wrap": 1},  # the 1x1 shortcut, wrapped as the block's other convs
        None, None,  # the dense VGG block
        {"out_wrap": 2, "in_wrap": 2}, {"out_wrap": 2, "in_wrap": 2},
    ]
    assert convs[2]["kernel_size"] == 1 and convs[2]["input_index"] == [-6]


def test_epitome_network_needs_fewer_crossbars() -> None:
    hw = HardwareConfig().with_updates(crossbar={"rows": 32, "cols": 32})  # small: little rounding to whole PEs
    dense = ArchSpec.from_string("V64w7a7-v64w7a7-R64w7a7-S")
    reports = {}
    for m in (1, 2, 4):
        spec = ArchSpec.from_string(str(dense).replace("a7-", f"a7e{m}-").replace("e1", ""))
        assert [layer.epitome for layer in spec.layers[:3]] == [m] * 3
        reports[m] = cost_network(arch_to_network_dict(spec, EPIM, (1, 8, 8), 10), hw)
    xb = {m: r["crossbars"] for m, r in reports.items()}
    assert xb[4] < xb[2] < xb[1]
    # the 64 -> 64 convs (all but the first conv and the shortcut, which read the 1-channel image)
    inner = {m: sum([ly["crossbars"] for ly in r["layers"] if ly["type"] == "conv"][1:-1]) for m, r in reports.items()}
    assert inner[2] * 3.5 <= inner[1]  # m = 2 on both wraps: 1/4 of the cells
    assert reports[4]["area_mm2"] < reports[1]["area_mm2"]


def test_genome_space_searches_the_epitome_gene() -> None:
    hw = HardwareConfig()
    g = GenomeSpace(EPIM, hw, {"crossbar.size": [64, 128]}, (1, 8, 8), 10)
    assert g.genes_per_layer == 5 and g.n_arch == 20 and g.n_genes == 21
    assert g.gene_names()[:5] == ["L0.block", "L0.width", "L0.w_bits", "L0.a_bits", "L0.epitome"]
    assert g.gene_choices()[4] == (1, 2, 4)
    assert g.arch_gene_indices([4]) == [4, 9, 14, 19]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        vec = g.random(rng)
        if not g.is_valid(vec):
            continue
        key = g.key(vec)
        assert np.array_equal(g.vec_of_key(key), vec)
        spec = g.candidate(vec).spec
        seen |= {layer.epitome for layer in spec.layers if layer.block != "skip"}
        skip = [i for i, layer in enumerate(spec.layers) if layer.block == "skip"]
        assert all(vec[5 * i + 4] == 0 for i in skip)  # canonical: a skip's epitome gene is 0
    assert seen == {1, 2, 4}
    dense = GenomeSpace(DENSE, hw, {"crossbar.size": [64, 128]}, (1, 8, 8), 10)
    assert dense.genes_per_layer == 4 and dense.n_genes == 17 and dense.arch_gene_indices([4]) == []
    assert dense.gene_names()[:5] == ["L0.block", "L0.width", "L0.w_bits", "L0.a_bits", "L1.block"]


CAPPED = SpaceConfig(n_layers=4, widths=(16, 32, 64), epitome=(1, 2, 4), epitome_out_max=2)


@given(st.lists(st.integers(0, 10**6), min_size=4 * 5, max_size=4 * 5))
@settings(max_examples=100, deadline=None)
def test_capped_space_gives_output_wraps_at_most_the_cap_and_round_trips(genes: list[int]) -> None:
    card = ArchSpec.gene_cardinalities(CAPPED)
    spec = ArchSpec.decode([g % int(c) for g, c in zip(genes, card, strict=True)], CAPPED)
    for layer in spec.layers:
        if layer.block != "skip":
            assert layer.wraps(64, 64) == (min(layer.epitome, 2), layer.epitome)
    if spec.is_valid(CAPPED):
        assert ArchSpec.from_string(str(spec)) == spec
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert ArchSpec.decode(spec.encode(CAPPED), CAPPED) == spec


def test_output_wrap_token_and_its_space() -> None:
    spec = ArchSpec.from_string("V64w7a5e4o2-S-R32w5a9e2-v16w9a9e1o2")
    assert [(layer.epitome, layer.epitome_out) for layer in spec.layers] == [(4, 2), (1, None), (2, None), (1, 2)]
    assert str(spec) == "V64w7a5e4o2-S-R32w5a9e2-v16w9a9e1o2"
    assert str(ArchSpec.from_string("V64w7a5e4o4")) == "V64w7a5e4"  # an output wrap equal to m is not printed
    assert LayerSpec("vgg", 64, 7, 5, 4, 4) == LayerSpec("vgg", 64, 7, 5, 4)
    assert spec.to_json()[0] == {"block": "vgg", "width": 64, "w_bits": 7, "a_bits": 5, "epitome": 4, "epitome_out": 2}
    assert epitome_wraps(4, 64, 64, 2) == (2, 4) and epitome_wraps(4, 1, 1, 2) == (1, 1)
    with pytest.raises(CrossnasError, match="must be >= 1"):
        ArchSpec.from_string("V64w7a5e4o0")
    # the space decides which output wrap a gene gives: e4 belongs to EPIM, e4o2 to CAPPED
    capped, plain = ArchSpec.from_string("V64w7a5e4o2-S-S-S"), ArchSpec.from_string("V64w7a5e4-S-S-S")
    assert capped.is_valid(CAPPED) and plain.is_valid(EPIM)
    with pytest.raises(CrossnasError, match=r"output wrap 4 of epitome 4: the space gives 2 \(space.epitome_out_max: 2\)"):
        plain.validate(CAPPED)
    with pytest.raises(CrossnasError, match="output wrap 2 of epitome 4: the space gives 4"):
        capped.validate(EPIM)
    assert ArchSpec.from_string("V64w7a5e2-S-S-S").is_valid(CAPPED)  # m <= cap: no suffix


def test_output_wrap_cap_config() -> None:
    assert "epitome_out_max" not in EPIM.model_dump(mode="json")  # absent at its default: hashes as before
    assert CAPPED.model_dump(mode="json")["epitome_out_max"] == 2
    assert SpaceConfig.model_validate(CAPPED.model_dump(mode="json")) == CAPPED
    with pytest.raises(ValueError, match="epitome_out_max needs epitome choices"):
        SpaceConfig(n_layers=4, epitome_out_max=2)
    with pytest.raises(ValueError, match="epitome_out_max"):
        SpaceConfig(n_layers=4, epitome=(1, 2), epitome_out_max=0)


def test_capped_network_dict_keeps_the_crossbars_of_wider_output_wraps() -> None:
    """On 32-column arrays a 48-channel conv's epitome outputs fit one array per weight slice
    from out_wrap 2 on: wrapping outputs 4 times saves no crossbar over e4o2."""
    space = SpaceConfig(n_layers=2, widths=(48,), epitome=(1, 4), epitome_out_max=2)
    hw = HardwareConfig().with_updates(crossbar={"rows": 32, "cols": 32})
    net = arch_to_network_dict(ArchSpec.from_string("V48w6a6-v48w6a6e4o2"), space, (1, 8, 8), 10)
    convs = _convs(net)
    assert [c.get("epitome") for c in convs] == [None, None] + [{"out_wrap": 2, "in_wrap": 4}] * 2
    both4 = arch_to_network_dict(ArchSpec.from_string("V48w6a6-v48w6a6e4"), space.model_copy(
        update={"epitome_out_max": None}), (1, 8, 8), 10)
    xb = [[ly["crossbars"] for ly in cost_network(n, hw)["layers"] if ly["type"] == "conv"] for n in (net, both4)]
    assert xb[0] == xb[1]
    assert xb[0][3] * 8 == xb[0][1]  # the wrapped 48 -> 48 conv against the dense one: 1/8
