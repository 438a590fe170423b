"""Device noise, drift and time (issue 13): programming noise relative to G_max, lognormal,
clipping, the PCM model, drift and its compensation, per-read noise, the ADC's use of all
codes, the zero-calibration fallback, rows read at once, old seeds, and the ideal limit."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from crossnas.config.hardware import HardwareConfig
from crossnas.pimsim import (
    CrossbarSpec,
    PimLayer,
    PimSimSettings,
    ideal_hardware,
    pim_accuracy,
    pim_layers,
    sample_conductances,
    simulate_model,
)
from crossnas.pimsim.mapping import (
    LayerStreams,
    pcm_drift_exponent_stats,
    pcm_programming_sigma,
    program_cells,
)
from crossnas.quant import QuantConv2d, QuantLinear

GENERAL = PimSimSettings(force_general_path=True)
DATA = Path(__file__).parent / "data"
YEAR = 31_536_000.0


def _spec(**kw: object) -> CrossbarSpec:
    base: dict[str, object] = dict(
        rows=16, cols=16, cell_bits=2, dac_bits=1, adc_bits=None, range_mode="scale",
        polarity=2, g_min=0.0, sigma=0.0, p_hrs=0.0, p_lrs=0.0,
    )
    base.update(kw)
    return CrossbarSpec(**base)  # type: ignore[arg-type]


def _levels(shape: tuple[int, int], levels: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, levels, shape, generator=torch.Generator().manual_seed(seed)).float()


def _linear(k: int = 64, n: int = 16, *, w_bits: int = 5, a_bits: int = 6, seed: int = 0) -> QuantLinear:
    torch.manual_seed(seed)
    lin = QuantLinear(k, n, w_bits=w_bits, a_bits=a_bits)
    lin.act_clip.fill_(2.0)
    lin.requires_grad_(False)
    return lin.eval()


def _x(m: int, k: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(m, k, generator=torch.Generator().manual_seed(seed)).relu()


# --- programming noise -------------------------------------------------------------------
def test_state_independent_programming_sigma_is_relative_to_gmax_at_every_level() -> None:
    spec = _spec(cell_bits=2, g_min=0.5, prog_sigma=0.04, clip_gmax=False)
    g_top = spec.g_top  # 3.5 level steps
    lv = torch.arange(4.0).repeat_interleave(50_000).view(-1, 1)
    g = sample_conductances(lv, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    for level in range(1, 4):  # level 0 sits 3.6 sigma above 0: clamping is negligible too
        err = g[lv == level] - (spec.g_min + level)
        assert float(err.mean()) == pytest.approx(0.0, abs=0.002)
        assert float(err.std()) == pytest.approx(0.04 * g_top, rel=0.02)


def test_more_levels_per_cell_mean_less_margin_per_level() -> None:
    # the same 2 % of G_max on 2- and 16-level cells: in level steps 2 % x 1 vs 2 % x 15
    for levels, expect in ((2, 0.02 * 1), (16, 0.02 * 15)):
        spec = _spec(cell_bits=int(math.log2(levels)), prog_sigma=0.02, clip_gmax=False)
        lv = torch.full((200_000, 1), float(levels // 2))
        g = sample_conductances(lv, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
        assert float((g - lv).std()) == pytest.approx(expect, rel=0.02)
    # and a 5-bit weight layer loses more on 4-bit cells (one slice) than on 1-bit cells
    # (four slices, the noise of the low slices weighted down by their place value)
    src, x = _linear(w_bits=5), _x(64)
    ref = src(x)
    errors = {}
    for levels in (2, 16):
        hw = HardwareConfig().with_updates(
            device={"levels": levels, "prog_noise_pct": 3.0, "hrs_ohm": 1e8},
            adc={"ideal": True},
        )
        runs = [float((simulate_model(src, hw, seed=s)(x) - ref).pow(2).mean().sqrt()) for s in range(4)]
        errors[levels] = sum(runs) / len(runs)
    assert errors[16] > 1.3 * errors[2]


@settings(max_examples=40, deadline=None)
@given(
    cell_bits=st.integers(1, 4),
    g_min=st.sampled_from([0.0, 0.01, 0.3]),
    sigma=st.sampled_from([0.0, 0.05, 0.5]),
    prog=st.sampled_from([0.0, 0.02, 0.3]),
    model=st.sampled_from(["gaussian", "pcm"]),
    lognormal=st.booleans(),
    clip=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_programmed_conductances_are_never_negative_and_clip_at_gmax(
    cell_bits: int, g_min: float, sigma: float, prog: float, model: str, lognormal: bool, clip: bool, seed: int
) -> None:
    spec = _spec(cell_bits=cell_bits, g_min=g_min, sigma=sigma, prog_sigma=prog, noise_model=model,
                 lognormal=lognormal, clip_gmax=clip)
    lv = _levels((300, 7), spec.levels, seed)
    g = sample_conductances(lv, spec, torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1))
    assert bool((g >= 0).all()) and bool(torch.isfinite(g).all())
    if clip and spec.new_programming_model:
        assert float(g.max()) <= float(torch.tensor(spec.g_top, dtype=torch.float32))
    if lognormal:  # multiplicative: a zero conductance stays zero, a positive one positive
        assert bool(((g > 0) == (lv + g_min > 0)).all())


def test_lognormal_programming_error_has_the_configured_mean_and_spread() -> None:
    spec = _spec(cell_bits=2, g_min=0.0, prog_sigma=0.05, lognormal=True, clip_gmax=False)
    lv = torch.full((200_000, 1), 2.0)
    g = sample_conductances(lv, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    assert float(g.min()) > 0
    assert float(g.mean()) == pytest.approx(2.0, rel=0.002)
    assert float(g.std()) == pytest.approx(0.05 * 3, rel=0.02)  # sigma = 5 % of G_max = 3 steps


def test_clipping_at_gmax_cuts_the_upper_half_of_the_top_level() -> None:
    spec = _spec(cell_bits=1, prog_sigma=0.05)
    lv = torch.ones(100_000, 1)
    g = sample_conductances(lv, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    assert float(g.max()) == spec.g_top  # 1.0 exactly
    assert float((g == spec.g_top).float().mean()) == pytest.approx(0.5, abs=0.01)
    unclipped = sample_conductances(lv, _spec(cell_bits=1, prog_sigma=0.05, clip_gmax=False),
                                    torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    assert float(unclipped.max()) > spec.g_top


def test_pcm_programming_noise_follows_the_polynomial() -> None:
    spec = _spec(cell_bits=4, g_min=15 / 99, noise_model="pcm", clip_gmax=False)
    for level in (0, 5, 15):
        lv = torch.full((100_000, 1), float(level))
        g = sample_conductances(lv, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(level))
        x = torch.tensor((spec.g_min + level) / spec.g_top)
        expect = float(pcm_programming_sigma(x)) * spec.g_top
        # at level 0 (x = 0.01) the clamp at 0 trims the lower tail: only the upper half is clean
        err = g - (spec.g_min + level)
        measured = float(err.std()) if level else float(err[err > 0].pow(2).mean().sqrt())
        assert measured == pytest.approx(expect, rel=0.03)
    # the published fit: 1.05 % of G_max at x = 0, 4.2 % at x = 1 (25 uS device)
    assert float(pcm_programming_sigma(torch.tensor(0.0))) == pytest.approx(0.26348 / 25)
    assert float(pcm_programming_sigma(torch.tensor(1.0))) == pytest.approx((0.26348 + 1.965 - 1.1731) / 25)


# --- drift ---------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [60.0, 86_400.0, YEAR])
def test_drift_law_mean_ratio(t: float) -> None:
    nu, nu_std = 0.05, 0.01
    spec = _spec(cell_bits=2, drift_nu=nu, drift_nu_std=nu_std, time_s=t)
    lv = torch.full((100_000, 1), 3.0)
    g_prog, g_t = program_cells(lv, spec, LayerStreams(0, 0))
    assert torch.equal(g_prog, lv)  # no programming noise configured
    ratio = g_t / g_prog
    lr = math.log(t / spec.drift_t0_s)
    # E[(t/t0)^-nu] for nu ~ N(mu, s): exp(-mu L + s^2 L^2 / 2)
    assert float(ratio.mean()) == pytest.approx(math.exp(-nu * lr + 0.5 * (nu_std * lr) ** 2), rel=0.003)
    assert float(-ratio.log().mean() / lr) == pytest.approx(nu, rel=0.01)


def test_no_drift_before_t0_or_at_time_zero_and_pcm_exponents_follow_the_fit() -> None:
    lv = torch.full((1000, 1), 3.0)
    for t in (0.0, 10.0):
        spec = _spec(cell_bits=2, drift_nu=0.05, time_s=t)
        g_prog, g_t = program_cells(lv, spec, LayerStreams(0, 0))
        assert torch.equal(g_prog, g_t)
    # PCM: nu ~ |N(mu(x), s(x))| of the target state; mean log-ratio ~ mean nu
    spec = _spec(cell_bits=2, noise_model="pcm", time_s=YEAR, g_min=3 / 99)
    lv = torch.full((100_000, 1), 1.0)
    g_prog, g_t = program_cells(lv, spec, LayerStreams(0, 0))
    x = torch.tensor((spec.g_min + 1.0) / spec.g_top)
    mu, s = (float(v) for v in pcm_drift_exponent_stats(x))
    assert (mu, s) == (pytest.approx(max(0.049, -0.0155 * math.log(float(x)) + 0.0244)),
                       pytest.approx(max(0.008, -0.0125 * math.log(float(x)) - 0.0059)))
    ok = (g_t > 0) & (g_prog > 0)
    # the 1/f noise (zero mean) blurs each cell but not the median of the drift factor
    factor = (g_t[ok] / g_prog[ok]).median()
    assert float(-factor.log() / math.log(YEAR / 20)) == pytest.approx(mu, rel=0.05)


def test_the_same_chip_at_different_times_shares_its_programming_and_exponents() -> None:
    lv = _levels((500, 4), 4)
    base = dict(cell_bits=2, g_min=0.1, noise_model="pcm")
    g0, g_day = program_cells(lv, _spec(**base, time_s=86_400.0), LayerStreams(3, 1))
    g0b, g_year = program_cells(lv, _spec(**base, time_s=YEAR), LayerStreams(3, 1))
    assert torch.equal(g0, g0b)
    # without the 1/f term, log G decays linearly in log t with the same per-cell nu
    spec = dict(cell_bits=2, drift_nu=0.06, drift_nu_std=0.02)
    _, a = program_cells(lv, _spec(**spec, time_s=1e3), LayerStreams(3, 1))
    _, b = program_cells(lv, _spec(**spec, time_s=1e6), LayerStreams(3, 1))
    nz = lv > 0
    nu_a = -(a[nz] / lv[nz]).log() / math.log(1e3 / 20)
    nu_b = -(b[nz] / lv[nz]).log() / math.log(1e6 / 20)
    assert torch.allclose(nu_a, nu_b, atol=1e-5)


def _scale(hw: HardwareConfig, src: nn.Module, x: torch.Tensor, ref: torch.Tensor, seeds: range) -> float:
    """The least-squares gain of the simulated outputs over the digital ones, mean over chips."""
    vals = []
    for s in seeds:
        y = simulate_model(src, hw, seed=s, settings=GENERAL)(x)
        vals.append(float((y * ref).sum() / (ref * ref).sum()))
    return sum(vals) / len(vals)


def test_drift_compensation_restores_the_mean_output_scale() -> None:
    src = _linear(k=128, n=32, w_bits=5, a_bits=6)
    src.bias = None
    x = _x(64, 128)
    hw = HardwareConfig().with_updates(device={"levels": 16, "drift_nu": 0.06, "drift_nu_std": 0.02,
                                               "hrs_ohm": 1e8}, adc={"ideal": True})
    ref = src(x)
    comp = _scale(hw.with_updates(device={"time_s": YEAR}), src, x, ref, range(3))
    raw = _scale(hw.with_updates(device={"time_s": YEAR, "drift_compensation": False}), src, x, ref, range(3))
    lr = math.log(YEAR / 20)
    assert raw == pytest.approx(math.exp(-0.06 * lr + 0.5 * (0.02 * lr) ** 2), rel=0.05)
    assert comp == pytest.approx(1.0, abs=0.02)
    sim = simulate_model(src, hw.with_updates(device={"time_s": YEAR}), seed=0)
    assert isinstance(sim, PimLayer) and sim.drift_gain > 2  # (1.6e6)^0.06 ~ 2.3


def test_drifted_accuracy_falls_with_time_without_compensation() -> None:
    net, x, _ = _net()
    y = net(x).argmax(1)  # the digital prediction is the label: accuracy 1 on ideal hardware
    hw = HardwareConfig().with_updates(device={"type": "PCM", "drift_compensation": False})
    acc = {t: pim_accuracy(net, hw.with_updates(device={"time_s": t}), x, y, mc_runs=2, seed=0,
                           calibration_x=x).mean for t in (60.0, YEAR)}
    assert acc[YEAR] < acc[60.0]


# --- per-read noise ----------------------------------------------------------------------------
def test_read_noise_is_independent_of_batch_size_chunking_and_order() -> None:
    src = QuantConv2d(3, 8, 3, padding=1, w_bits=5, a_bits=5)
    src.act_clip.fill_(1.5)
    src.eval()
    x = torch.rand(7, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    hw = HardwareConfig().with_updates(device={"read_noise_pct": 2.0}, adc={"bits": 8}, crossbar={"rows": 16})
    sim = simulate_model(src, hw, seed=5, calibration=x)
    assert not sim.fast and not CrossbarSpec.from_hardware(hw).deterministic
    full = sim(x)
    small = simulate_model(src, hw, seed=5, calibration=x, settings=PimSimSettings(chunk_elements=16384))
    assert torch.equal(torch.cat([sim(x[:3]), sim(x[3:])]), full)
    assert small._rows_per_chunk() < 81  # type: ignore[operator]
    assert torch.equal(small(x), full)  # chunks of 20 pixels: images and noise groups split
    perm = torch.tensor([4, 0, 6, 2, 1, 5, 3])
    assert torch.equal(sim(x[perm]), full[perm])
    assert torch.equal(sim(x[2:3]), full[2:3])
    # a new Monte-Carlo run (seed) draws new noise; no noise at all reads differently
    assert not torch.equal(simulate_model(src, hw, seed=6, calibration=x)(x), full)
    quiet = simulate_model(src, hw.with_updates(device={"read_noise_pct": 0.0}), seed=5, calibration=x)
    assert not torch.equal(quiet(x), full)


def test_read_noise_spread_matches_the_per_cell_model() -> None:
    # ideal ADC, one input cycle, one slice per array: acc = sum_r x_r w_r + noise with
    # variance s^2 G_max^2 sum_r x_r^2 per array read (two arrays per output, polarity 2)
    src = _linear(k=32, n=4, w_bits=4, a_bits=3)
    x = _x(4000, 32, seed=3)
    s = 0.03
    hw = HardwareConfig().with_updates(device={"levels": 8, "read_noise_pct": 100 * s, "hrs_ohm": 1e9},
                                       adc={"ideal": True}, dac={"choice": 3}, crossbar={"rows": 32})
    sim = simulate_model(src, hw, seed=0)
    quiet = simulate_model(src, hw.with_updates(device={"read_noise_pct": 0.0}), seed=0)
    assert isinstance(sim, PimLayer)
    x_int, step_x = sim._quantize_input(x)
    diff = (sim(x) - quiet(x)) / (step_x * sim.step_w)  # acc units
    g_top = sim.spec.g_top
    expect_sd = s * g_top * (2 * x_int.pow(2).sum(1, keepdim=True)).sqrt()
    z = diff / expect_sd.clamp(min=1e-9)
    z = z[expect_sd.squeeze(1) > 0]
    assert float(z.mean()) == pytest.approx(0.0, abs=0.03)
    assert float(z.std()) == pytest.approx(1.0, rel=0.03)


# --- ADC ------------------------------------------------------------------------------------
def test_fixed_range_without_leakage_gives_a_b_bit_adc_all_its_codes() -> None:
    # 16 rows of 1-bit cells, 1-bit DAC: partial sums 0..16; a 4-bit fixed ADC steps by 1
    # (the old rule counted the HRS current and stepped by 2: a 3-bit ADC in effect)
    src = _linear(k=16, n=8, w_bits=2, a_bits=1)
    src.weight.fill_(0.5)  # every weight +1: the positive array is all at the top level
    x = (torch.arange(16).view(1, -1) < torch.arange(17).view(-1, 1)).float() * 2.0  # j inputs on
    hw = HardwareConfig().with_updates(crossbar={"rows": 16}, dac={"bits": 1}, device={"hrs_ohm": 1e6},
                                       adc={"bits": 4, "range_mode": "fixed"})
    sim = simulate_model(src, hw, settings=GENERAL)
    assert isinstance(sim, PimLayer) and sim.full_scale == 16 and sim.adc_step_value == 1.0
    x_int, _ = sim._quantize_input(x)
    codes = torch.bmm(sim._digits(x_int), sim.g_read).round().clamp(0, 15)
    assert len(torch.unique(codes)) == 16  # every one of the 2**4 codes is read


def test_a_calibration_of_only_zeros_falls_back_to_the_fixed_range_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = _linear(k=16, n=4)
    hw = HardwareConfig().with_updates(crossbar={"rows": 16}, adc={"bits": 6})
    with caplog.at_level(logging.WARNING, logger="crossnas.pimsim.layers"):
        sim = simulate_model(src, hw, calibration=torch.zeros(8, 16))
    assert isinstance(sim, PimLayer)
    assert "only zero partial sums" in caplog.text and "fixed ADC range" in caplog.text
    fixed = simulate_model(src, hw.with_updates(adc={"range_mode": "fixed"}))
    assert sim.full_scale == fixed.full_scale == 16 * (2 - 1)  # type: ignore[union-attr]
    x = _x(32, 16)
    assert torch.equal(sim(x), fixed(x))  # later inputs read on the fixed range, not 91 % wrong
    assert float((sim(x) - src(x)).abs().max() / src(x).abs().max()) < 0.2


# --- rows read at once ---------------------------------------------------------------------
def test_subarray_rows_equal_to_rows_changes_nothing_and_fewer_rows_read_finer() -> None:
    src = _linear(k=100, n=8, w_bits=6, a_bits=6)
    x = _x(64, 100)
    ref = src(x)
    base = {"crossbar": {"rows": 64}, "adc": {"bits": 3, "range_mode": "fixed"}, "device": {"hrs_ohm": 1e7}}
    hw = HardwareConfig().with_updates(**base)
    same = HardwareConfig().with_updates(**{**base, "crossbar": {"rows": 64, "subarray_rows": 64}})
    assert torch.equal(simulate_model(src, hw, settings=GENERAL)(x), simulate_model(src, same, settings=GENERAL)(x))
    errs = {}
    for sub in (64, 32, 16, 8):
        hw_s = HardwareConfig().with_updates(**{**base, "crossbar": {"rows": 64, "subarray_rows": sub}})
        sim = simulate_model(src, hw_s, settings=GENERAL)
        assert isinstance(sim, PimLayer)
        # 100 rows on 64-row crossbars: 64 + 36 rows, each cut into groups of `sub` rows
        assert sim.plan.n_reads == math.ceil(64 / sub) + math.ceil(36 / sub)
        assert sim.full_scale == sub * 1 * 1  # fixed: one group's signal maximum
        errs[sub] = float((sim(x) - ref).pow(2).mean().sqrt())
    assert errs[8] < errs[16] < errs[32] < errs[64]
    # with an ideal ADC the grouping is only a different order of the same sums
    ideal = ideal_hardware(HardwareConfig().with_updates(crossbar={"rows": 64, "subarray_rows": 8}))
    assert float((simulate_model(src, ideal, settings=GENERAL)(x) - ref).abs().max()) < 1e-4


def test_bad_subarray_rows_are_one_line_errors() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="subarray_rows"):
        HardwareConfig().with_updates(crossbar={"rows": 64, "subarray_rows": 65})


# --- old seeds and the ideal limit -------------------------------------------------------------
def _recorded_net() -> nn.Module:
    return nn.Sequential(
        QuantConv2d(1, 4, 3, padding=1, w_bits=5, a_bits=6, signed_input=True), nn.ReLU(),
        QuantConv2d(4, 6, 3, stride=2, padding=1, w_bits=7, a_bits=5), nn.ReLU(),
        nn.Flatten(), QuantLinear(6 * 16, 10, w_bits=6, a_bits=7)).eval()


_CUSTOM_ADC = {"choice": None, "area_um2": 1.0, "power_W": 1.0, "sample_rate_GSps": 1.0}
RECORDED = {
    "ideal_adc_var_faults": {"adc": {"ideal": True},
                             "device": {"variation_pct": 5.0, "stuck_at_hrs": 0.02, "stuck_at_lrs": 0.01,
                                        "hrs_ohm": 1e5}},
    "adc6_scale_var": {"adc": {"bits": 6, **_CUSTOM_ADC}, "device": {"variation_pct": 3.0},
                       "crossbar": {"rows": 32}},
    "adc8_scale_var_faults_p1": {"adc": {"bits": 8, **_CUSTOM_ADC},
                                 "device": {"variation_pct": 2.0, "stuck_at_hrs": 0.01, "levels": 4},
                                 "pe": {"polarity": 1}, "dac": {"choice": 2}},
}


def test_old_seeds_give_the_outputs_recorded_before_the_noise_models() -> None:
    # tests/pimsim/data/before_issue13.pt: a tiny net's outputs computed with the simulator
    # as it was before issue 13 (relative variation, faults, finite on/off, ADC, both paths);
    # every new noise field is 0 and time_s 0 here, so the outputs must not move a bit
    ref = torch.load(DATA / "before_issue13.pt")
    net = _recorded_net()
    net.load_state_dict(ref["state_dict"])
    for key, want in ref["outputs"].items():
        name, general, seed = key.split("/")
        hw = HardwareConfig().with_updates(**RECORDED[name])
        settings_ = PimSimSettings(force_general_path=general.endswith("True"))
        sim = simulate_model(net, hw, seed=int(seed.split("=")[1]), settings=settings_, calibration=ref["cal"])
        with torch.no_grad():
            assert torch.equal(sim(ref["x"]), want), key


def _net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(
        conv1=QuantConv2d(1, 8, 3, padding=1, w_bits=5, a_bits=6, signed_input=True), bn=nn.BatchNorm2d(8),
        relu=nn.ReLU(), pool=nn.MaxPool2d(2), conv2=QuantConv2d(8, 8, 3, padding=1, w_bits=7, a_bits=5),
        relu2=nn.ReLU(), flat=nn.Flatten(), fc=QuantLinear(8 * 16, 10, w_bits=6, a_bits=7)))
    net.train()
    with torch.no_grad():
        for i in range(3):
            net(torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(100 + i)))
    net.eval()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    return net, x, net(x).argmax(1)


@pytest.mark.parametrize("device", [
    {"type": "PCM", "time_s": YEAR, "drift_compensation": False},
    {"type": "FeFET", "time_s": YEAR, "distribution": "lognormal"},
    {"prog_noise_pct": 5.0, "read_noise_pct": 3.0, "drift_nu": 0.1, "time_s": 1e6, "variation_pct": 4.0},
])
def test_the_ideal_limit_is_exact_for_noisy_drifting_devices(device: dict[str, object]) -> None:
    net, x, y = _net()
    hw = HardwareConfig().with_updates(device=device)
    ideal = ideal_hardware(hw)
    assert CrossbarSpec.from_hardware(ideal).deterministic
    sim = simulate_model(net, ideal, seed=3)
    assert all(layer.fast for layer in pim_layers(sim))
    assert torch.equal(sim(x), net(x))
    res = pim_accuracy(net, ideal, x, y, mc_runs=2)
    assert res.mean == res.quantized_accuracy == 1.0
    noisy = pim_accuracy(net, hw, x, y, mc_runs=2, calibration_x=x)
    assert noisy.mean < 1.0


def test_random_new_noise_makes_runs_differ_and_deterministic_settings_do_not() -> None:
    for device, deterministic in (
        ({"prog_noise_pct": 1.0}, False), ({"read_noise_pct": 1.0}, False), ({"type": "PCM"}, False),
        ({"drift_nu": 0.05, "time_s": 100.0}, True), ({"drift_nu": 0.05, "drift_nu_std": 0.01}, True),
        ({"drift_nu": 0.05, "drift_nu_std": 0.01, "time_s": 100.0}, False), ({"type": "SRAM"}, True),
    ):
        spec = CrossbarSpec.from_hardware(HardwareConfig().with_updates(device=device))
        assert spec.deterministic == deterministic, device
