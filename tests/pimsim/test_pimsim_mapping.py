"""Weight/input encodings, device sampling, ADC step rule and hardware checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.pimsim import (
    CrossbarSpec,
    LayerPlan,
    PimSimSettings,
    adc_exponent,
    adc_read_,
    adc_step,
    ideal_hardware,
    sample_conductances,
    weight_levels,
)
from crossnas.pimsim.mapping import layer_generator
from crossnas.quant import weight_qmax


def _spec(**kw: object) -> CrossbarSpec:
    base = dict(
        rows=16,
        cols=16,
        cell_bits=1,
        dac_bits=1,
        adc_bits=None,
        range_mode="scale",
        polarity=2,
        g_min=0.0,
        sigma=0.0,
        p_hrs=0.0,
        p_lrs=0.0,
    )
    base.update(kw)
    return CrossbarSpec(**base)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    w_bits=st.integers(1, 10),
    cell_bits=st.integers(1, 4),
    polarity=st.sampled_from([1, 2]),
    seed=st.integers(0, 10_000),
)
def test_weight_levels_reconstruct_the_integer_weight(
    w_bits: int, cell_bits: int, polarity: int, seed: int
) -> None:
    q = weight_qmax(w_bits)
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-q, q + 1, (5, 7), generator=g).float()
    spec = _spec(cell_bits=cell_bits, polarity=polarity)
    plan = LayerPlan.build(7, 5, w_bits, 8, False, spec)
    lv = weight_levels(w, plan)
    assert lv.shape == (7, plan.n_arrays, plan.n_slices, 5)
    assert bool((lv >= 0).all()) and bool((lv <= (1 << cell_bits) - 1).all())
    assert bool(torch.equal(lv, lv.round()))
    beta = plan.column_coefficients().float()
    recon = (lv.reshape(7, -1, 5) * beta.view(1, -1, 1)).sum(1) - plan.weight_offset
    assert torch.equal(recon.t(), w)
    # The stored magnitude never needs more slices than its bits require.
    bits_needed = max(1, (q if polarity == 2 else 2 * q).bit_length())
    assert plan.n_slices == math.ceil(bits_needed / cell_bits)


def test_polarity_two_puts_each_weight_in_one_array_only() -> None:
    w = torch.tensor([[3.0, -5.0, 0.0]])
    plan = LayerPlan.build(3, 1, 4, 4, False, _spec(cell_bits=2))
    lv = weight_levels(w, plan)
    pos_used = lv[:, 0].sum(1).squeeze(-1) > 0
    neg_used = lv[:, 1].sum(1).squeeze(-1) > 0
    assert pos_used.tolist() == [True, False, False]
    assert neg_used.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("a_bits", "signed", "dac", "passes", "cycles"),
    [
        (8, False, 1, 1, 8),
        (8, False, 2, 1, 4),
        (9, False, 2, 1, 5),
        (8, True, 1, 2, 7),
        (5, True, 2, 2, 2),
    ],
)
def test_plan_counts_cycles_and_floor(
    a_bits: int, signed: bool, dac: int, passes: int, cycles: int
) -> None:
    plan = LayerPlan.build(576, 64, 9, a_bits, signed, _spec(dac_bits=dac, rows=128, cols=64))
    assert len(plan.pass_signs) == passes and plan.n_cycles == cycles
    assert plan.n_blocks == 5  # ceil(576 / 128)
    assert plan.col_blocks == math.ceil(64 * plan.n_slices / 64)
    assert plan.floor_matmuls == passes * cycles * plan.n_slices * 2
    gamma = plan.cycle_coefficients()
    assert gamma[:cycles].tolist() == [float(1 << (dac * c)) for c in range(cycles)]


def test_issue_example_floor_is_144() -> None:
    # 9-bit inputs (unsigned) through a 1-bit DAC, 9-bit weights on 1-bit cells, polarity 2.
    plan = LayerPlan.build(576, 64, 9, 9, False, _spec())
    assert plan.floor_matmuls == 9 * 8 * 2


def test_sample_conductances_faults_and_variation_statistics() -> None:
    levels = torch.full((400, 500), 1.0)
    spec = _spec(cell_bits=2, p_hrs=0.1, p_lrs=0.05)
    g = sample_conductances(levels, spec, torch.Generator().manual_seed(3))
    assert abs(float((g == 0).float().mean()) - 0.1) < 0.005
    assert abs(float((g == 3).float().mean()) - 0.05) < 0.005
    assert set(torch.unique(g).tolist()) == {0.0, 1.0, 3.0}
    spec = _spec(cell_bits=2, sigma=0.2, g_min=0.5)
    g = sample_conductances(levels, spec, torch.Generator().manual_seed(4))
    rel = g / 1.5 - 1
    assert abs(float(rel.mean())) < 0.005 and abs(float(rel.std()) - 0.2) < 0.005
    spec = _spec(sigma=1.0)
    assert float(sample_conductances(levels, spec, torch.Generator().manual_seed(5)).min()) == 0.0


def test_layer_generators_are_reproducible_and_independent() -> None:
    a = torch.rand(8, generator=layer_generator(7, 0))
    assert torch.equal(a, torch.rand(8, generator=layer_generator(7, 0)))
    assert not torch.equal(a, torch.rand(8, generator=layer_generator(7, 1)))
    assert not torch.equal(a, torch.rand(8, generator=layer_generator(8, 0)))


@given(fs=st.floats(0.01, 1e6), bits=st.integers(1, 14))
def test_adc_step_covers_full_scale_and_is_power_of_two(fs: float, bits: int) -> None:
    n = adc_exponent(fs)
    assert 2.0 ** (n - 1) < fs <= 2.0**n  # n = ceil(log2 FS): no wasted bit
    step = adc_step(fs, bits)
    assert math.log2(step) == n - bits
    top = ((1 << bits) - 1) * step
    assert top == 2.0**n - step and fs - top <= step  # the top code is within one step of FS


@pytest.mark.parametrize("n", [0, 1, 5, 8, 12])
def test_adc_exponent_of_powers_of_two_is_exact(n: int) -> None:
    fs = 2.0**n
    assert adc_exponent(fs) == n
    assert adc_exponent(math.nextafter(fs, math.inf)) == n + 1
    assert adc_exponent(math.nextafter(fs, 0.0)) == n


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_a_b_bit_adc_uses_all_its_codes(bits: int) -> None:
    # the integer partial sums 0 .. 2**bits - 1 (full scale 2**bits - 1): every one of the
    # 2**bits codes is read, each exactly (the old "strictly above" rule used half of them)
    fs = float((1 << bits) - 1)
    step = adc_step(fs, bits)
    ps = torch.arange(0, (1 << bits), dtype=torch.float64)
    codes = adc_read_(ps.clone(), step, bits)
    assert step == 1.0
    assert torch.equal(codes, ps) and len(torch.unique(codes)) == 1 << bits
    # a full scale that is itself a power of two keeps the resolution; only its top value clips
    fs = float(1 << bits)
    step = adc_step(fs, bits)
    ps = torch.arange(0, (1 << bits) + 1, dtype=torch.float64)
    codes = adc_read_(ps.clone(), step, bits)
    assert step == 1.0 and torch.equal(codes[:-1], ps[:-1]) and codes[-1] == (1 << bits) - 1


@settings(max_examples=50, deadline=None)
@given(fs=st.floats(1.0, 5000.0), seed=st.integers(0, 1000))
def test_adc_error_of_each_read_never_grows_with_more_bits(fs: float, seed: int) -> None:
    ps = (
        torch.rand(2000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        * fs
        * 1.3
    )
    prev = None
    for bits in range(1, 16):
        step = adc_step(fs, bits)
        err = (adc_read_(ps.clone(), step, bits) * step - ps).abs()
        if prev is not None:
            assert bool((err <= prev + 1e-9).all())
        prev = err


def test_adc_reads_integers_exactly_once_bits_cover_the_range() -> None:
    ps = torch.arange(0, 301, dtype=torch.float32)
    step = adc_step(300, 9)  # 300 < 2**9
    assert step == 1.0
    assert torch.equal(adc_read_(ps.clone(), step, 9) * step, ps)
    step = adc_step(300, 8)
    assert not torch.equal(adc_read_(ps.clone(), step, 8) * step, ps)


def test_spec_from_hardware_resolves_fields() -> None:
    hw = HardwareConfig().with_updates(
        device={
            "levels": 4,
            "hrs_ohm": 1e5,
            "lrs_ohm": 1e4,
            "variation_pct": 5,
            "stuck_at_hrs": 0.01,
        },
        crossbar={"rows": 64, "cols": 32},
        adc={"bits": 7, "range_mode": "fixed"},
        dac={"bits": 2},
        pe={"polarity": 1},
    )
    spec = CrossbarSpec.from_hardware(hw)
    assert (spec.rows, spec.cols, spec.cell_bits, spec.dac_bits, spec.adc_bits) == (64, 32, 2, 2, 7)
    assert spec.range_mode == "fixed" and spec.polarity == 1
    assert spec.g_min == pytest.approx(3 / 9)
    assert spec.sigma == pytest.approx(0.05) and spec.p_hrs == 0.01 and not spec.deterministic
    ideal = CrossbarSpec.from_hardware(ideal_hardware(hw))
    assert ideal.adc_bits is None and ideal.g_min == 0.0 and ideal.deterministic
    assert (ideal.rows, ideal.cell_bits, ideal.polarity) == (64, 2, 1)


def test_spec_rejects_levels_not_power_of_two_in_one_line() -> None:
    bad = HardwareConfig.model_construct(**dict(HardwareConfig()))
    dev = bad.device.model_construct(**{**dict(bad.device), "levels": 6})
    bad = HardwareConfig.model_construct(**{**dict(bad), "device": dev})
    with pytest.raises(CrossnasError, match="device.levels must be a power of two"):
        CrossbarSpec.from_hardware(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"adc_scale_percentile": 0},
        {"adc_scale_percentile": 101},
        {"calibration_samples": 0},
        {"chunk_elements": 10},
    ],
)
def test_settings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(CrossnasError):
        PimSimSettings(**kwargs)  # type: ignore[arg-type]
