"""Search config validation, genome encoding, operators and hardware genes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig, apply_hardware_genes
from crossnas.config.space import SpaceConfig
from crossnas.search.genome import GenomeSpace

GENES = {"crossbar.size": (32, 64, 128, 256), "adc.choice": (1, 2, 3, 4, 5, 6, 7, 8), "dac.choice": (1, 2),
         "device.levels": (2, 4), "tile.inter_tile_bandwidth_Gbps": (10.0, 20.0, 40.0)}


def genomes(**kw) -> GenomeSpace:
    return GenomeSpace(SpaceConfig(), HardwareConfig(), GENES, (1, 8, 8), 10, **kw)


@pytest.mark.parametrize(
    ("genes", "needle"),
    [
        ({"crossbar.bogus": [1]}, "unknown hardware gene 'crossbar.bogus'"),
        ({"adc.choice": []}, "must not be empty"),
        ({"device.levels": [2, 3]}, "choice 3 is invalid"),
        ({"adc.choice": [9]}, "choice 9 is invalid"),
        ({"crossbar.size": [64], "crossbar.rows": [64]}, "crossbar.size sets rows and cols"),
        ({"dac.choice": [1, 1]}, "must not repeat"),
    ],
)
def test_bad_hardware_genes_rejected(genes: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        SearchConfig.model_validate({"hardware_genes": genes})


def test_config_checks() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        SearchConfig.model_validate({"evolution": {"population": 5, "top_k": 6}})
    with pytest.raises(ValidationError, match="w_acc"):
        SearchConfig.model_validate({"w_acc": [1.5]})
    with pytest.raises(ValidationError):
        SearchConfig.model_validate({"objectives": ["accuracy"]})
    with pytest.raises(ValidationError, match="extra|not permitted|Extra"):
        SearchConfig.model_validate({"generations": 3})
    cfg = SearchConfig.model_validate({"constraints": {"max_area_mm2": 10, "max_edp_mJms": 0.5}})
    assert cfg.constraints.limits() == {"edp_mJms": 0.5, "area_mm2": 10.0}


def test_apply_hardware_genes_semantics() -> None:
    base = HardwareConfig.model_validate({"adc": {"choice": 6, "range_mode": "fixed"}})
    hw = apply_hardware_genes(base, {"crossbar.size": 64, "adc.choice": 7, "device.levels": 4})
    assert (hw.crossbar.rows, hw.crossbar.cols) == (64, 64)
    assert hw.adc.choice == 7 and hw.adc.bits == 4  # the preset's figures replace the base's
    assert hw.adc.range_mode == "fixed"  # non-preset fields are kept
    assert hw.device.levels == 4
    assert base.crossbar.rows == 256  # the base is untouched


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_key_round_trip_and_canonical(seed: int) -> None:
    g = genomes()
    vec = g.random(np.random.default_rng(seed))
    key = g.key(vec)
    back = g.vec_of_key(key)
    assert np.array_equal(back, vec)
    assert g.key(back) == key
    # a skip layer's other genes do not change the key
    skip = g.space.blocks.index("skip")
    v2 = vec.copy()
    v2[0] = skip
    v3 = v2.copy()
    v3[1:4] = (v3[1:4] + 1) % 3
    assert g.key(g.canonical(v2)) == g.key(g.canonical(v3))
    cand = g.candidate(vec) if g.is_valid(vec) else None
    if cand is not None:
        assert cand.key == key and str(cand.spec) == key.split("|")[0]
        assert cand.hardware.crossbar.rows == dict(cand.hw_genes)["crossbar.size"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_frozen_genes_never_change(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = genomes(search_bits=False)
    frozen_hw = {i: 1 for i in g.hw_gene_indices()}
    g2 = g.freeze(frozen_hw)
    a, b = g2.random(rng), g2.random(rng)
    for child in (g2.mutate(a, 1.0, rng), g2.crossover(a, b, rng), a):
        assert all(child[i] == 1 for i in g2.hw_gene_indices())
        for i in g2.arch_gene_indices([2, 3]):  # bits at the largest choice unless the layer is a skip
            layer_block = g2.space.blocks[child[i - i % 4]]
            assert child[i] == (0 if layer_block == "skip" else 2)


def test_invalid_genomes_detected() -> None:
    g = GenomeSpace(SpaceConfig(), HardwareConfig.model_validate({"crossbar": {"subarray_rows": 128}}),
                    {"crossbar.size": (64, 256)}, (1, 8, 8), 10)
    vec = np.zeros(g.n_genes, dtype=np.int64)
    vec[0 : g.n_arch : 4] = g.space.blocks.index("skip")
    vec[0:4] = [g.space.blocks.index("residual"), 0, 0, 0]
    vec[g.n_arch] = 0  # 64 rows < subarray_rows 128: invalid hardware
    assert not g.is_valid(vec) and g.hardware_of(vec) is None
    vec[g.n_arch] = 1
    assert g.is_valid(vec)
    # more pooling blocks than an 8x8 input allows before a 2x2 head
    pools = vec.copy()
    for i in range(3):
        pools[4 * i] = g.space.blocks.index("vgg")
    assert not g.is_valid(pools)
    all_skip = vec.copy()
    all_skip[0 : g.n_arch : 4] = g.space.blocks.index("skip")
    assert not g.is_valid(g.canonical(all_skip))


def test_base_hw_frozen_uses_base_values() -> None:
    g = genomes()
    frozen = g.base_hw_frozen()
    assert frozen is not None
    vals = dict(zip(g.hw_paths, (g.hw_choices[j][frozen[g.n_arch + j]] for j in range(len(g.hw_paths))), strict=True))
    assert vals == {"crossbar.size": 256, "adc.choice": 6, "dac.choice": 1, "device.levels": 2,
                    "tile.inter_tile_bandwidth_Gbps": 20.0}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 3), st.sampled_from([2, 4]))
def test_synthetic_proxy_charges_epitome_wraps(seed: int, layer: int, m: int) -> None:
    """The synthetic accuracy proxy (tests, dry runs) sees EPIM's trade-off: wrapping a
    layer's epitome lowers its score (jitter off)."""
    from dataclasses import replace

    from crossnas.search.evaluators import SyntheticAccuracy
    from crossnas.search.genome import Candidate
    from crossnas.space.arch import ArchSpec, random_arch

    space = SpaceConfig(n_layers=4, widths=(16, 32, 64), epitome=(1, 2, 4))
    spec = random_arch(space, np.random.default_rng(seed), 8)
    dense = ArchSpec(tuple(replace(x, epitome=1) for x in spec.layers))
    if dense.layers[layer].block == "skip":
        return
    proxy = SyntheticAccuracy(jitter=0.0)

    def score(s: ArchSpec) -> float:
        return proxy.evaluate([Candidate(str(s), s, HardwareConfig(), ())])[0]

    wrapped = [replace(x, epitome=m) if i == layer else x for i, x in enumerate(dense.layers)]
    assert score(ArchSpec(tuple(wrapped))) < score(dense)
