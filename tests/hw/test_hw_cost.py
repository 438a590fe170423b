"""Cost-model invariants (hypothesis) and the corrected mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.hw import cost_network, cost_networks, network_from_dict
from crossnas.space.arch import ArchSpec, LayerSpec, random_arch
from crossnas.space.mnsim import arch_to_network_dict

SPACE = SpaceConfig(n_layers=4)
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _net(spec: ArchSpec) -> dict:
    return arch_to_network_dict(spec, SPACE, (3, 32, 32), 10)


def _hw(xbar: int, adc: int, dac: int, mode: str = "mnsim") -> HardwareConfig:
    return HardwareConfig.model_validate(
        {"crossbar": {"rows": xbar, "cols": xbar}, "adc": {"choice": adc}, "dac": {"choice": dac}, "cost_mode": mode}
    )


MODES = ("mnsim", "corrected")
arch_st = st.integers(0, 2**31 - 1).map(lambda s: random_arch(SPACE, np.random.default_rng(s), 32))


def hw_st(mode: str | None = None) -> st.SearchStrategy[HardwareConfig]:
    """Hardware in cost mode ``mode`` (``None``: either)."""
    modes = st.sampled_from(MODES) if mode is None else st.just(mode)
    return st.builds(_hw, st.sampled_from([32, 64, 128, 256]), st.integers(1, 8), st.integers(1, 5), modes)


def _with_layer(spec: ArchSpec, i: int, **kw: int) -> ArchSpec:
    layers = list(spec.layers)
    layers[i] = LayerSpec(layers[i].block, kw.get("width", layers[i].width), kw.get("w_bits", layers[i].w_bits),
                          kw.get("a_bits", layers[i].a_bits))
    return ArchSpec(tuple(layers))


def _nonskip(spec: ArchSpec) -> list[int]:
    return [i for i, layer in enumerate(spec.layers) if layer.block != "skip"]


def _dynamic(rep: dict) -> float:
    """Energy without the static (leakage x latency) part of the corrected mode."""
    return rep["energy_mJ"] - rep.get("static_energy_mJ", 0.0)


def _neighbours(spec: ArchSpec, field: str, choices: tuple[int, ...], data: st.DataObject) -> tuple[ArchSpec, ArchSpec]:
    """Two copies of ``spec`` that differ only in ``field`` of one non-skip layer, set to two
    neighbouring allowed ``choices`` (lower, higher): always a valid pair, never a skipped example."""
    i = data.draw(st.sampled_from(_nonskip(spec)), label="layer")
    j = data.draw(st.integers(0, len(choices) - 2), label="choice")
    return _with_layer(spec, i, **{field: choices[j]}), _with_layer(spec, i, **{field: choices[j + 1]})


@HYP
@given(st.lists(st.tuples(arch_st, hw_st()), min_size=1, max_size=12))
def test_batch_equals_one_by_one(items) -> None:  # noqa: ANN001
    nets = [_net(a) for a, _ in items]
    hws = [h for _, h in items]
    batch = cost_networks(nets, hws)
    for i, (n, h) in enumerate(zip(nets, hws, strict=True)):
        single = cost_network(n, h)
        for key in ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2", "power_W"):
            assert getattr(batch, key)[i] == pytest.approx(single[key], rel=1e-9)
    assert np.allclose(batch.edp_mJms, batch.latency_ms * batch.energy_mJ)


@pytest.mark.parametrize("mode", MODES)
@HYP
@given(arch_st, st.data())
def test_more_weight_bits_never_cost_less_area_energy_or_crossbars(mode, spec, data) -> None:  # noqa: ANN001
    """More weight slices -> more PEs and tiles. (Latency is not monotone in MNSIM: tile
    placement distances change with the tile count; so the corrected mode's static energy,
    leakage x latency, is not either: its dynamic energy is.)"""
    hw = data.draw(hw_st(mode), label="hw")
    lo, hi = _neighbours(spec, "w_bits", SPACE.w_bits, data)
    a, b = cost_network(_net(lo), hw), cost_network(_net(hi), hw)
    assert b["crossbars"] >= a["crossbars"]
    assert b["area_mm2"] >= a["area_mm2"]
    assert _dynamic(b) >= _dynamic(a) * (1 - 1e-12)


@pytest.mark.parametrize("mode", MODES)
@HYP
@given(arch_st, st.data())
def test_more_activation_bits_never_cost_less(mode, spec, data) -> None:  # noqa: ANN001
    """Activation bits lengthen input cycles, buffer traffic and transfers; the mapping is unchanged."""
    hw = data.draw(hw_st(mode), label="hw")
    lo, hi = _neighbours(spec, "a_bits", SPACE.a_bits, data)
    a, b = cost_network(_net(lo), hw), cost_network(_net(hi), hw)
    assert b["latency_ms"] >= a["latency_ms"] * (1 - 1e-12)
    assert b["energy_mJ"] >= a["energy_mJ"] * (1 - 1e-12)
    if mode == "mnsim":
        assert b["area_mm2"] == a["area_mm2"]
    else:  # buffers sized to the network's need grow with the activation bits
        assert b["area_mm2"] >= a["area_mm2"]


@pytest.mark.parametrize("mode", MODES)
@HYP
@given(arch_st, st.data())
def test_wider_layer_never_costs_less_area_or_energy(mode, spec, data) -> None:  # noqa: ANN001
    hw = data.draw(hw_st(mode), label="hw")
    lo, hi = _neighbours(spec, "width", SPACE.widths, data)
    a, b = cost_network(_net(lo), hw), cost_network(_net(hi), hw)
    assert b["crossbars"] >= a["crossbars"]
    assert b["area_mm2"] >= a["area_mm2"]
    assert b["energy_mJ"] >= a["energy_mJ"] * (1 - 1e-12)


@pytest.mark.parametrize("mode", MODES)
@HYP
@given(arch_st, st.sampled_from([32, 64, 128, 256]), st.integers(1, 15))
def test_adc_resolution_raises_latency_and_energy(mode, spec, xbar, bits) -> None:  # noqa: ANN001
    """Same ADC power/area/rate, one more bit: each conversion takes (bits + 2)/rate, so
    latency and energy cannot fall; area is unchanged (MNSIM's ADC area is per preset)."""
    def hw(b: int) -> HardwareConfig:
        return HardwareConfig.model_validate({"crossbar": {"rows": xbar, "cols": xbar}, "cost_mode": mode, "adc": {
            "bits": b, "area_um2": 1000.0, "power_W": 2e-3, "sample_rate_GSps": 1.0}})
    n = _net(spec)
    a, b = cost_network(n, hw(max(bits, 2))), cost_network(n, hw(max(bits, 2) + 1))
    assert b["latency_ms"] >= a["latency_ms"]
    assert b["area_mm2"] == a["area_mm2"]
    if mode == "mnsim":
        assert b["energy_mJ"] > a["energy_mJ"]
        return
    # corrected: an ADC converts at most the bits a column can produce (the survey model scales
    # the configured ADC's energy down to that resolution); while every layer needs them all,
    # one more bit costs more
    needed = min(ly["adc_bits_needed"] for ly in a["layers"] if "adc_bits_needed" in ly)
    if max(bits, 2) + 1 <= needed:
        assert _dynamic(b) > _dynamic(a)


def test_mnsim_mode_ignores_bits_per_cell_corrected_mode_honours_them() -> None:
    n = _net(ArchSpec.from_string("V64w9a9-R128w9a9-S-v32w7a7"))
    base = {"crossbar": {"rows": 128, "cols": 128}}
    one = {"device": {"levels": 2}}
    four = {"device": {"levels": 16, "hrs_ohm": 1e6, "lrs_ohm": 1e4}}
    m1 = cost_network(n, HardwareConfig.model_validate({**base, **one}))
    m4 = cost_network(n, HardwareConfig.model_validate({**base, **four}))
    assert (m1["crossbars"], m1["energy_mJ"], m1["area_mm2"]) == (m4["crossbars"], m4["energy_mJ"], m4["area_mm2"])
    c1 = cost_network(n, HardwareConfig.model_validate({**base, **one, "cost_mode": "corrected"}))
    c4 = cost_network(n, HardwareConfig.model_validate({**base, **four, "cost_mode": "corrected"}))
    assert c4["crossbars"] < c1["crossbars"] and c4["area_mm2"] < c1["area_mm2"]


def test_corrected_mode_caps_adcs_and_reports_average_power() -> None:
    n = _net(ArchSpec.from_string("V32w7a7-V64w7a7-S-S"))
    mn = cost_network(n, _hw(32, 6, 1))
    co = cost_network(n, _hw(32, 6, 1, "corrected"))
    # 32 columns: 32 of MNSIM's 128 ADCs per crossbar; corrected mode gives each of the two
    # polarity arrays its own converters (the simulator converts each array's columns)
    assert co["components"]["area_mm2"]["ADC"] == pytest.approx(mn["components"]["area_mm2"]["ADC"] / 4 * 2)
    assert co["power_W"] == pytest.approx(co["energy_mJ"] / co["latency_ms"])
    assert mn["power_W"] > mn["energy_mJ"] / mn["latency_ms"]  # MNSIM's peak power


def test_report_layers_and_components_add_up() -> None:
    rep = cost_network(_net(ArchSpec.from_string("V64w5a7-R32w9a5-v64w7a7-S")), HardwareConfig())
    assert sum(ly["energy_mJ"] for ly in rep["layers"]) == pytest.approx(rep["energy_mJ"])
    assert sum(rep["components"]["energy_mJ"].values()) == pytest.approx(rep["energy_mJ"])
    assert sum(rep["components"]["area_mm2"].values()) == pytest.approx(rep["area_mm2"])
    assert sum(ly["area_mm2"] for ly in rep["layers"]) == pytest.approx(rep["area_mm2"])
    assert max(ly["finish_ms"] for ly in rep["layers"]) == pytest.approx(rep["latency_ms"])
    assert rep["edp_mJms"] == pytest.approx(rep["latency_ms"] * rep["energy_mJ"])


def test_crossbar_smaller_than_a_kernel_slice_is_refused() -> None:
    from crossnas.errors import CrossnasError

    hw = HardwareConfig.model_validate({"crossbar": {"rows": 8, "cols": 8}})
    with pytest.raises(CrossnasError, match="crossbar.rows"):
        cost_network(network_from_dict(_net(ArchSpec.from_string("V32w7a7-S-S-S"))), hw)


def _rand_hw(rng: np.random.Generator) -> HardwareConfig:
    xbar = int(rng.choice([32, 64, 128, 256]))
    pe = int(rng.choice([1, 2, 4]))
    return HardwareConfig.model_validate({
        "crossbar": {"rows": xbar, "cols": xbar}, "adc": {"choice": int(rng.integers(1, 9))},
        "dac": {"choice": int(rng.integers(1, 6))},
        "pe": {"polarity": int(rng.choice([1, 2])), "adcs_per_subarray": int(rng.choice([16, 32, 64, 128])),
               "dacs_per_subarray": int(rng.choice([16, 32, 64, 128]))},
        "tile": {"pe_rows": pe, "pe_cols": pe, "inter_tile_bandwidth_Gbps": float(rng.choice([10, 20, 40]))},
        "chip": {"digital_frequency_MHz": float(rng.choice([250, 500, 1000])),
                 "buffer_tech_nm": int(rng.choice([45, 65, 90]))},
        "device": {"levels": 4, "hrs_ohm": 1e6, "lrs_ohm": 1e4},
        "cost_mode": str(rng.choice(["mnsim", "corrected"])),
    })


def _population(seed: int, n: int) -> tuple[list, list]:
    """Random networks and hardware, plus corner cases: a residual block reading the network
    input, a 3-input element_sum, an fc-only network, and a non-spiral mesh (reference path)."""
    from crossnas.hw.examples import EXAMPLES

    rng = np.random.default_rng(seed)
    space = SpaceConfig(n_layers=6)
    specs = [random_arch(space, rng, 32) for _ in range(n)]
    specs.append(ArchSpec.from_string("R32w9a9-S-V64w5a7-R128w7a9-S-S"))  # residual first: MNSIM can't
    nets = [network_from_dict(arch_to_network_dict(sp, space, (3, 32, 32), 10)) for sp in specs]
    conv = {"type": "conv", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1}
    nets.append(network_from_dict({"input_shape": [8, 8, 8], "layers": [
        conv, conv, {**conv, "weight_bit": 5}, {"type": "element_sum", "input_index": [-1, -2, -3]},
        {"type": "element_sum", "input_index": [-1, -5]},
        {"type": "view"}, {"type": "fc", "in_features": 512, "out_features": 10}]}))
    nets.append(network_from_dict({"input_shape": [4, 4, 4], "layers": [
        {"type": "view"}, {"type": "fc", "in_features": 64, "out_features": 300, "activation_bit": 4},
        {"type": "fc", "in_features": 300, "out_features": 10}]}))
    nets.append(network_from_dict(EXAMPLES["resnet18"]()))
    hws = [_rand_hw(rng) for _ in nets]
    hws[-1] = HardwareConfig.model_validate({"chip": {"tile_connection": 0}})  # row-major placement
    return nets, hws


def _same(a, b, rtol: float = 1e-9) -> None:  # noqa: ANN001
    for key in ("latency_ms", "energy_mJ", "area_mm2", "power_W"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=rtol)


def test_compiled_and_python_kernels_agree_batched_and_one_by_one() -> None:
    """One kernel source: compiled (numba) and uncompiled give the same numbers, whatever the batch."""
    from crossnas.hw.cost import cost_networks as cn

    pytest.importorskip("numba")
    nets, hws = _population(11, 25)
    a = cn(nets, hws, backend="numba")
    b = cn(nets, hws, backend="python")
    _same(a, b)
    np.testing.assert_allclose(a.lay, b.lay, rtol=1e-9, atol=1e-12)  # per-layer figures too
    one = [cn([n], [h], backend="numba") for n, h in zip(nets, hws, strict=True)]
    assert np.array_equal(a.latency_ms, np.array([o.latency_ms[0] for o in one]))
    assert np.array_equal(a.energy_mJ, np.array([o.energy_mJ[0] for o in one]))


@pytest.mark.parametrize("connection", [0, 1, 2, 3])
@pytest.mark.parametrize("mesh", [(64, 64), (33, 40), (31, 31)])
def test_kernel_placement_distances_match_the_placement_oracle(connection: int, mesh: tuple[int, int]) -> None:
    """The kernel's aggregation-tile distances equal an independent numpy implementation of
    MNSIM's placement (tests/hw/placement_ref.py) on every placement order and mesh shape."""
    from placement_ref import layer_distances, mesh_coords

    nets, _ = _population(13, 12)
    hw = HardwareConfig.model_validate({"chip": {"tile_rows": mesh[0], "tile_cols": mesh[1],
                                                 "tile_connection": connection}})
    batch = cost_networks(nets, [hw] * len(nets), strict=False)
    checked = 0
    for i, net in enumerate(nets):
        if i in batch.errors:
            continue
        d = batch.detail(i)
        ntile = np.array([r.tiles for r in d.layers])
        start = np.concatenate([[0], np.cumsum(ntile)[:-1]]).astype(np.int64)
        cons: list[list[int]] = [[] for _ in net.layers]
        for j, lay in enumerate(net.layers):
            for src in lay.inputs:
                if src >= 0:
                    cons[src].append(j)
        is_sum = np.array([lay.type == "element_sum" for lay in net.layers])
        branch = np.array([bool(c) and all(is_sum[j] for j in c) for c in cons])
        coords = mesh_coords(int(ntile.sum()), mesh[0], mesh[1], connection)
        d_in, d_tr = layer_distances(coords, start, ntile, cons, branch, is_sum, mesh[0] / 2)
        np.testing.assert_allclose([r.d_in for r in d.layers], d_in)
        np.testing.assert_allclose([r.d_trans for r in d.layers], d_tr)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_unmappable_layer_raises_in_every_backend(backend: str) -> None:
    from crossnas.errors import CrossnasError

    if backend == "numba":
        pytest.importorskip("numba")
    nets, _ = _population(3, 9)
    hws = [HardwareConfig()] * len(nets)
    hws[4] = HardwareConfig.model_validate({"crossbar": {"rows": 8, "cols": 8}})
    with pytest.raises(CrossnasError, match="crossbar.rows"):
        cost_networks(nets, hws, backend=backend)
    lenient = cost_networks(nets, hws, backend=backend, strict=False)
    assert set(lenient.errors) == {4} and np.isinf(lenient.latency_ms[4])
    assert np.isfinite(np.delete(lenient.latency_ms, 4)).all()


def test_package_works_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba unimportable: the same kernel runs uncompiled, with the same numbers."""
    import sys

    from crossnas.hw import cost as C
    from crossnas.hw import kernel as K

    nets, hws = _population(2, 12)
    ref = cost_networks(nets, hws, backend="python", strict=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # makes ``import numba`` raise ImportError
    monkeypatch.setitem(K._STATE, "state", "unloaded")
    monkeypatch.setitem(K._STATE, "fn", None)
    monkeypatch.setattr(C, "_costed", C.KERNEL_WARMUP)  # past the warm-up: auto wants the compiled kernel
    batch = cost_networks(nets, hws, strict=False)
    assert K._STATE["state"] == "missing"
    _same(batch, ref, rtol=0)


def test_auto_backend_defers_the_compiled_kernel_for_one_off_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh process costing one small network (the CLI) does not import numba; a population does."""
    from crossnas.hw import cost as C
    from crossnas.hw import kernel as K

    pytest.importorskip("numba")
    monkeypatch.setitem(K._STATE, "state", "unloaded")
    monkeypatch.setitem(K._STATE, "fn", None)
    monkeypatch.setattr(C, "_costed", 0)
    nets, hws = _population(4, 40)
    cost_networks(nets[:1], hws[:1])
    assert not K.compiled_loaded()
    cost_networks(nets, hws)
    assert K.compiled_loaded()
