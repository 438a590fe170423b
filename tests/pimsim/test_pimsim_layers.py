"""Simulated conv/linear layers: exactness, agreement with a loop reference, ADC effects."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.pimsim import (
    PimConv2d,
    PimLayer,
    PimLinear,
    PimSimSettings,
    ideal_hardware,
    simulate_model,
)
from crossnas.quant import QuantConv2d, QuantLinear, quantize_act_int

GENERAL = PimSimSettings(force_general_path=True)


def _hw(**sections: dict[str, object]) -> HardwareConfig:
    """Hardware with some fields replaced; ``device.hrs_ohm: inf`` (an infinite on/off
    ratio, which configs refuse: the cost model needs a finite HRS) is set unvalidated,
    as :func:`ideal_hardware` does."""
    dev = dict(sections.get("device", {}))
    infinite = dev.pop("hrs_ohm", None) == float("inf")
    hw = HardwareConfig().with_updates(**{**sections, "device": dev})
    if infinite:
        hw = hw.model_copy(update={"device": hw.device.model_copy(update={"hrs_ohm": float("inf")})})
    return hw


def _conv(
    c_in: int = 6,
    c_out: int = 5,
    k: int = 3,
    *,
    w_bits: int = 7,
    a_bits: int = 6,
    signed: bool = False,
    stride: int = 1,
    padding: int = 1,
    bias: bool = True,
    seed: int = 0,
) -> QuantConv2d:
    torch.manual_seed(seed)
    conv = QuantConv2d(
        c_in,
        c_out,
        k,
        stride=stride,
        padding=padding,
        bias=bias,
        w_bits=w_bits,
        a_bits=a_bits,
        signed_input=signed,
    )
    conv.act_clip.fill_(1.5)
    return conv.eval()


def _linear(
    k: int = 40,
    n: int = 7,
    *,
    w_bits: int = 5,
    a_bits: int = 7,
    signed: bool = False,
    seed: int = 0,
) -> QuantLinear:
    torch.manual_seed(seed)
    lin = QuantLinear(k, n, w_bits=w_bits, a_bits=a_bits, signed_input=signed)
    lin.act_clip.fill_(2.0)
    return lin.eval()


def _input(shape: tuple[int, ...], signed: bool, seed: int = 1) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x if signed else x.relu()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp_min(1e-12))


# ----------------------------------------------------------------------------------
# The slow, obviously-correct reference: explicit loops over passes, cycles, arrays,
# slices, row blocks and columns; digits by integer shifts; the ADC written out.
# ----------------------------------------------------------------------------------
def reference_accumulate(layer: PimLayer, rows: torch.Tensor) -> torch.Tensor:
    plan, spec = layer.plan, layer.spec
    g = layer.conductance.double()  # (k, arrays, slices, n): the devices the fast code sampled
    m = rows.shape[0]
    out = torch.zeros(m, plan.n, dtype=torch.float64)
    mask = (1 << plan.dac_bits) - 1
    for p, p_sign in enumerate(plan.pass_signs):
        part = rows if not plan.signed else (rows.clamp(min=0) if p == 0 else (-rows).clamp(min=0))
        ints = [[int(v) for v in row] for row in part.tolist()]
        for c in range(plan.n_cycles):
            d = torch.tensor(
                [[(v >> (plan.dac_bits * c)) & mask for v in row] for row in ints],
                dtype=torch.float64,
            )
            for a, a_sign in enumerate(plan.array_signs):
                for s in range(plan.n_slices):
                    groups = [
                        (r, min(r + plan.read_rows, (b + 1) * plan.rows, plan.k))
                        for b in range(plan.n_blocks)
                        for r in range(b * plan.rows, min(plan.k, (b + 1) * plan.rows), plan.read_rows)
                    ]  # one ADC read per group of read_rows rows of each crossbar
                    for r0, r1 in groups:
                        for col in range(plan.n):
                            ps = (d[:, r0:r1] * g[r0:r1, a, s, col]).sum(1)
                            if spec.adc_bits is not None:
                                step = layer.adc_step_value
                                assert step is not None
                                ps = (
                                    torch.clamp(torch.round(ps / step), 0, 2**spec.adc_bits - 1)
                                    * step
                                )
                            coef = (
                                p_sign
                                * 2 ** (plan.dac_bits * c)
                                * a_sign
                                * 2 ** (plan.cell_bits * s)
                            )
                            out[:, col] += coef * ps
    beta_sum = sum(
        a_sign * 2 ** (plan.cell_bits * s)
        for a_sign in plan.array_signs
        for s in range(plan.n_slices)
    )
    kappa = plan.weight_offset + spec.g_min * beta_sum
    return out - kappa * rows.double().sum(1, keepdim=True)


def _layer_rows(layer: PimLayer, x: torch.Tensor) -> torch.Tensor:
    x_int, _ = quantize_act_int(x, layer.a_bits, layer.act_clip, layer.signed_input)
    return torch.cat([rows for _, rows in layer._row_chunks(x_int)])


@pytest.mark.parametrize(
    ("kind", "signed", "polarity", "rows", "dac", "levels", "adc"),
    [
        ("conv", False, 2, 16, 1, 2, {"bits": 4, "range_mode": "fixed"}),
        ("conv", True, 1, 32, 2, 4, {"bits": 5, "range_mode": "scale"}),
        ("conv", False, 1, 8, 2, 2, {"bits": 3, "range_mode": "scale"}),
        ("linear", True, 2, 16, 1, 4, {"bits": 6, "range_mode": "fixed"}),
        ("linear", False, 1, 64, 2, 2, {"ideal": True}),
    ],
)
def test_vectorised_equals_loop_reference_with_adc_and_faults(
    kind: str, signed: bool, polarity: int, rows: int, dac: int, levels: int, adc: dict[str, object]
) -> None:
    hw = _hw(
        device={
            "levels": levels,
            "stuck_at_hrs": 0.05,
            "stuck_at_lrs": 0.03,
            "hrs_ohm": float("inf"),
        },
        crossbar={"rows": rows},
        dac={"bits": dac},
        pe={"polarity": polarity},
        adc=adc,
    )
    if kind == "conv":
        src: torch.nn.Module = _conv(signed=signed, w_bits=6, a_bits=5)
        x = _input((2, 6, 5, 5), signed)
    else:
        src = _linear(signed=signed)
        x = _input((9, 40), signed)
    layer = simulate_model(src, hw, seed=11, settings=GENERAL, calibration=x)
    assert isinstance(layer, PimLayer) and not layer.fast
    assert bool(
        (layer.conductance != layer.conductance.round()).sum() == 0
    )  # faults keep integer levels
    rows_ = _layer_rows(layer, x)
    ref = reference_accumulate(layer, rows_)
    fast = torch.cat(
        [
            layer._accumulate(r)
            for _, r in layer._row_chunks(
                quantize_act_int(x, layer.a_bits, layer.act_clip, layer.signed_input)[0]
            )
        ]
    )
    assert torch.equal(fast.double(), ref)  # integer arithmetic: exactly equal
    # and the whole forward is that accumulator times the scales plus the bias
    y = layer(x)
    x_int, sx = quantize_act_int(x, layer.a_bits, layer.act_clip, layer.signed_input)
    expect = ref * (sx * layer.step_w).double()
    if kind == "conv":
        b = x.shape[0]
        expect = expect.view(b, -1, layer.plan.n).transpose(1, 2).reshape(y.shape)
        expect = expect + layer.bias.view(1, -1, 1, 1)
    else:
        expect = expect + layer.bias
    assert _rel(y.double(), expect) < 1e-6


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 20),
    n=st.integers(1, 4),
    m=st.integers(1, 6),
    w_bits=st.integers(2, 9),
    a_bits=st.integers(2, 9),
    signed=st.booleans(),
    polarity=st.sampled_from([1, 2]),
    rows=st.sampled_from([1, 3, 8, 32]),
    dac=st.integers(1, 3),
    levels=st.sampled_from([2, 4, 8]),
    adc_bits=st.integers(1, 10),
    mode=st.sampled_from(["fixed", "scale"]),
    p_fault=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 1000),
)
def test_random_small_linear_layers_match_the_loop_reference(
    k: int,
    n: int,
    m: int,
    w_bits: int,
    a_bits: int,
    signed: bool,
    polarity: int,
    rows: int,
    dac: int,
    levels: int,
    adc_bits: int,
    mode: str,
    p_fault: float,
    seed: int,
) -> None:
    hw = _hw(
        device={
            "levels": levels,
            "stuck_at_hrs": p_fault,
            "stuck_at_lrs": p_fault / 2,
            "hrs_ohm": float("inf"),
        },
        crossbar={"rows": rows},
        dac={"bits": dac},
        pe={"polarity": polarity},
        adc={"bits": adc_bits, "range_mode": mode},
    )
    src = _linear(k, n, w_bits=w_bits, a_bits=a_bits, signed=signed, seed=seed)
    x = _input((m, k), signed, seed=seed + 1)
    try:
        layer = simulate_model(src, hw, seed=seed, settings=GENERAL, calibration=x)
    except CrossnasError:  # a fixed range that reads only zeros: rejected by design
        assert mode == "fixed"
        return
    rows_ = _layer_rows(layer, x)
    ref = reference_accumulate(layer, rows_)
    assert torch.equal(layer._accumulate(rows_).double(), ref)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 40),
    rows=st.sampled_from([4, 8, 16]),
    sub=st.integers(1, 16),
    adc_bits=st.integers(2, 8),
    mode=st.sampled_from(["fixed", "scale"]),
    signed=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_subarray_reads_match_the_loop_reference(
    k: int, rows: int, sub: int, adc_bits: int, mode: str, signed: bool, seed: int
) -> None:
    # crossbar.subarray_rows: each group of `sub` rows of a crossbar is read by the ADC on its own
    sub = min(sub, rows)
    hw = _hw(
        device={"levels": 4, "stuck_at_hrs": 0.1, "hrs_ohm": float("inf")},
        crossbar={"rows": rows, "subarray_rows": sub},
        dac={"bits": 2},
        adc={"bits": adc_bits, "range_mode": mode},
    )
    src = _linear(k, 5, w_bits=6, a_bits=5, signed=signed, seed=seed)
    x = _input((6, k), signed, seed=seed + 1)
    try:
        layer = simulate_model(src, hw, seed=seed, settings=GENERAL, calibration=x)
    except CrossnasError:  # a fixed range that reads only zeros: rejected by design
        assert mode == "fixed"
        return
    assert isinstance(layer, PimLayer)
    blocks = -(-k // rows)
    assert layer.plan.n_reads == sum(-(-min(rows, k - b * rows) // sub) for b in range(blocks))
    rows_ = _layer_rows(layer, x)
    assert torch.equal(layer._accumulate(rows_).double(), reference_accumulate(layer, rows_))


@pytest.mark.parametrize(
    ("kind", "signed", "polarity"), [("conv", False, 1), ("linear", True, 2), ("linear", True, 1)]
)
def test_vectorised_equals_loop_reference_with_variation_and_finite_on_off(
    kind: str, signed: bool, polarity: int
) -> None:
    hw = _hw(
        device={
            "levels": 4,
            "variation_pct": 10,
            "stuck_at_hrs": 0.02,
            "hrs_ohm": 2e5,
            "lrs_ohm": 1e4,
        },
        crossbar={"rows": 16},
        dac={"bits": 2},
        pe={"polarity": polarity},
        adc={"bits": 5, "range_mode": "scale"},
    )
    if kind == "conv":
        src: torch.nn.Module = _conv(signed=signed, w_bits=5, a_bits=4)
        x = _input((2, 6, 4, 4), signed)
    else:
        src = _linear(signed=signed, w_bits=6, a_bits=5)
        x = _input((7, 40), signed)
    layer = simulate_model(src, hw, seed=5, settings=GENERAL, calibration=x)
    assert layer.spec.g_min > 0
    rows_ = _layer_rows(layer, x)
    ref = reference_accumulate(layer, rows_)
    fast = layer._accumulate(rows_)
    # float32 vs float64 sums of non-integer conductances: equal to rounding
    assert _rel(fast.double(), ref) < 1e-5


@pytest.mark.parametrize("polarity", [1, 2])
@pytest.mark.parametrize("rows", [8, 32, 256])
@pytest.mark.parametrize("dac", [1, 2])
@pytest.mark.parametrize("levels", [2, 4])
def test_ideal_conv_and_linear_reproduce_the_fake_quantized_layer(
    polarity: int, rows: int, dac: int, levels: int
) -> None:
    hw = ideal_hardware(
        _hw(
            pe={"polarity": polarity},
            crossbar={"rows": rows},
            dac={"bits": dac},
            device={"levels": levels},
        )
    )
    for signed in (False, True):
        for src, x in (
            (_conv(signed=signed, w_bits=8, a_bits=8, stride=2), _input((3, 6, 9, 9), signed)),
            (
                _conv(
                    c_in=4, c_out=3, k=1, padding=0, bias=False, signed=signed, w_bits=5, a_bits=9
                ),
                _input((2, 4, 6, 6), signed),
            ),
            (_linear(signed=signed, w_bits=9, a_bits=5), _input((6, 40), signed)),
        ):
            ref = src(x)
            fast = simulate_model(src, hw)
            assert fast.fast and torch.equal(fast(x), ref)  # same op on the same numbers
            general = simulate_model(src, hw, settings=GENERAL)
            assert not general.fast
            assert _rel(general(x), ref) <= 1e-4


def test_high_resolution_adc_takes_the_exact_fast_path() -> None:
    # 15 rows x 1 (DAC) x 1 (cell) -> partial sums <= 15 < 2**4: a 4-bit fixed ADC is exact.
    src = _conv(w_bits=6, a_bits=6)
    x = _input((2, 6, 6, 6), False)
    sections: dict[str, dict[str, object]] = {
        "crossbar": {"rows": 15},
        "adc": {"bits": 4, "range_mode": "fixed"},
        "device": {"hrs_ohm": float("inf")},
        "dac": {"bits": 1},
    }
    hw = _hw(**sections)
    sim = simulate_model(src, hw)
    assert sim.fast
    general = simulate_model(src, hw, settings=GENERAL)
    assert _rel(sim(x), general(x)) < 1e-6 and _rel(sim(x), src(x)) < 1e-6
    # one bit fewer: the ADC rounds, so the general path is taken and the result differs
    hw3 = _hw(**{**sections, "adc": {"bits": 3, "range_mode": "fixed"}})
    sim3 = simulate_model(src, hw3)
    assert not sim3.fast and _rel(sim3(x), src(x)) > 1e-3
    # a finite on/off ratio puts the HRS current in the partial sums: no longer exact
    hw_ratio = _hw(**{**sections, "device": {"hrs_ohm": 1e6}})
    assert not simulate_model(src, hw_ratio).fast


@pytest.mark.parametrize("mode", ["fixed", "scale"])
@pytest.mark.parametrize("seed", [0, 1])
def test_fewer_adc_bits_never_give_a_smaller_error(mode: str, seed: int) -> None:
    """Output error against the ideal ADC on a fixed input, as the ADC loses bits.

    Each ADC read is guaranteed at least as accurate with one more bit (nested grids,
    see test_adc_error_of_each_read_never_grows_with_more_bits). The layer output sums
    reads with signed coefficients, so below ~4 bits of the range (nearly every read
    rounds to 0 or one step) the total can cancel by chance: the guarantee here is
    from 5 bits on, plus the overall trend.
    """
    src = _conv(c_in=16, c_out=8, w_bits=8, a_bits=8, seed=seed)
    x = _input((4, 16, 8, 8), False, seed=3 + seed)
    base = _hw(
        crossbar={"rows": 64},
        dac={"bits": 2},
        device={"levels": 4, "stuck_at_hrs": 0.01},
        adc={"range_mode": mode},
    )
    ideal_out = simulate_model(src, base.with_updates(adc={"ideal": True}), seed=2)(x)
    errors = []
    for bits in range(1, 13):
        sim = simulate_model(
            src, base.with_updates(adc={"bits": bits}), seed=2, settings=GENERAL, calibration=x
        )
        errors.append(float(((sim(x) - ideal_out) ** 2).mean()))
    tail = errors[4:]
    assert all(lo <= hi for lo, hi in zip(tail[1:], tail[:-1], strict=False)), errors
    assert min(errors[:4]) > 10 * errors[7] and errors[-1] == pytest.approx(0.0, abs=1e-10)


def test_scale_calibration_lazy_equals_explicit_and_percentile_narrows_the_range() -> None:
    src = _conv(w_bits=7, a_bits=7)
    x = _input((3, 6, 6, 6), False)
    hw = _hw(crossbar={"rows": 32}, adc={"bits": 4, "range_mode": "scale"})
    lazy = simulate_model(src, hw, seed=1)
    assert lazy.needs_calibration
    y_lazy = lazy(x)
    explicit = simulate_model(src, hw, seed=1, calibration=x)
    assert not explicit.needs_calibration
    assert torch.equal(y_lazy, explicit(x)) and lazy.full_scale == explicit.full_scale
    pct = simulate_model(
        src, hw, seed=1, calibration=x, settings=PimSimSettings(adc_scale_percentile=50)
    )
    assert pct.full_scale is not None and explicit.full_scale is not None
    assert pct.full_scale < explicit.full_scale


def test_chunking_does_not_change_results() -> None:
    src = _conv(c_in=8, c_out=6, w_bits=7, a_bits=6)
    x = _input((5, 8, 7, 7), False)
    hw = _hw(
        crossbar={"rows": 32}, adc={"bits": 5, "range_mode": "fixed"}, device={"variation_pct": 5}
    )
    big = simulate_model(
        src, hw, seed=3, settings=PimSimSettings(force_general_path=True, chunk_elements=1 << 24)
    )
    small = simulate_model(
        src, hw, seed=3, settings=PimSimSettings(force_general_path=True, chunk_elements=1024)
    )
    assert torch.equal(big(x), small(x))
    lin = _linear()
    xl = _input((37, 40), False)
    a = simulate_model(
        lin, hw, seed=3, settings=PimSimSettings(force_general_path=True, chunk_elements=1024)
    )
    b = simulate_model(
        lin, hw, seed=3, settings=PimSimSettings(force_general_path=True, chunk_elements=1 << 24)
    )
    assert torch.equal(a(xl), b(xl))


def test_fixed_range_that_reads_only_zeros_is_rejected() -> None:
    src = _linear(k=3, n=2)
    hw = _hw(crossbar={"rows": 4096}, adc={"bits": 1, "range_mode": "fixed"})
    with pytest.raises(CrossnasError, match="adc.range_mode 'fixed'"):
        simulate_model(src, hw)
    simulate_model(src, hw.with_updates(adc={"range_mode": "scale"}))  # fine when calibrated


def test_unquantized_layer_is_rejected() -> None:
    lin = QuantLinear(4, 2)
    with pytest.raises(CrossnasError, match="needs quantized layers"):
        simulate_model(lin, HardwareConfig())


def test_layer_types_and_module_is_untouched() -> None:
    src = torch.nn.Sequential(_conv(), torch.nn.ReLU(), torch.nn.Flatten(), _linear(k=5 * 6 * 6))
    before = {k: v.clone() for k, v in src.state_dict().items()}
    sim = simulate_model(src, HardwareConfig(), seed=1)
    assert isinstance(sim[0], PimConv2d) and isinstance(sim[3], PimLinear)
    assert isinstance(src[0], QuantConv2d)
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())
