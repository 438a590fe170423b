"""Every hardware setting takes effect or is refused (the cost model's side).

In ``corrected`` mode each field of :class:`HardwareConfig` either moves a figure of a
network's cost or is a one-line error; the fields only the PIM accuracy simulator reads
are listed (:data:`SIMULATOR_ONLY`) and checked to exist. In ``mnsim`` mode the fields
MNSIM-2.0 itself ignores print one warning line. Absurd values are one-line errors, exit 2.
"""

from __future__ import annotations

import logging

import pytest

from crossnas.cli.main import main
from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.hw import cost_network, network_from_dict
from crossnas.hw.build import build_hardware
from crossnas.hw.examples import EXAMPLES

NET = network_from_dict(EXAMPLES["resnet18"]())
# a small global buffer, so the off-chip DRAM figures matter too
BASE = {"cost_mode": "corrected", "chip": {"global_buffer_KB": 1.0}}
FIGURES = ("latency_ms", "energy_mJ", "area_mm2", "power_W")

CHANGES: dict[str, object] = {
    "device.type": "PCM", "device.tech_nm": 45, "device.cell_area_um2": 0.5, "device.read_voltage_V": 0.3,
    "device.read_latency_ns": 10.0, "device.read_energy_J": 5e-15, "device.leakage_W": 1e-11, "device.levels": 4,
    "device.hrs_ohm": 1e7, "device.lrs_ohm": 2e4,
    "crossbar.rows": 128, "crossbar.cols": 128, "crossbar.subarray_rows": 64,
    "adc.choice": 2, "adc.bits": 5, "adc.area_um2": 900.0, "adc.power_W": 2e-3, "adc.sample_rate_GSps": 2.0,
    "dac.choice": 2, "dac.bits": 2, "dac.area_um2": 1.0, "dac.power_W": 1e-5, "dac.sample_rate_GSps": 2.0,
    "pe.polarity": 1, "pe.groups": 2, "pe.adcs_per_subarray": 32, "pe.dacs_per_subarray": 32,
    "tile.pe_rows": 4, "tile.pe_cols": 1, "tile.pooling_units": 16, "tile.pooling_tech_nm": 28,
    "tile.pe_input_buffer_KB": 0.25, "tile.output_buffer_KB": 1.0, "tile.intra_tile_bandwidth_Gbps": 64.0,
    "tile.inter_tile_bandwidth_Gbps": 80.0,
    "chip.tile_rows": 48, "chip.tile_cols": 16, "chip.digital_frequency_MHz": 1000.0, "chip.buffer_type": "DRAM",
    "chip.buffer_tech_nm": 45, "chip.buffer_bitwidth": 128, "chip.buffer_cycle_ns": 5.0, "chip.global_buffer_KB": 64.0,
    "chip.global_buffer_bandwidth_Gbps": 1.0, "chip.dram_bandwidth_Gbps": 1.0, "chip.dram_energy_pJ_per_bit": 40.0,
    "chip.tile_connection": 0, "cost_mode": "mnsim",
}
REFUSED: dict[str, object] = {"crossbar.cell_type": "0T1R"}
SIMULATOR_ONLY = {
    "device.variation_pct", "device.prog_noise_pct", "device.read_noise_pct", "device.noise_model",
    "device.distribution", "device.drift_nu", "device.drift_nu_std", "device.drift_t0_s", "device.time_s",
    "device.drift_compensation", "device.clip_gmax", "device.stuck_at_hrs", "device.stuck_at_lrs", "adc.ideal",
    "adc.range_mode",
}


ONLY_WITH_EPITOMES = {"epitome.datapath"}
"""Moves figures of networks with epitome layers only (tests/hw/test_hw_epitome.py)."""


def _fields() -> set[str]:
    out = set()
    for name, info in HardwareConfig.model_fields.items():
        sub = getattr(info.annotation, "model_fields", None)
        if sub is None:
            out.add(name)
        else:
            out |= {f"{name}.{f}" for f in sub}
    return out


def _hw(path: str | None = None, value: object = None) -> HardwareConfig:
    sets: dict = {}
    if path is not None:
        sec, _, leaf = path.partition(".")
        sets = {sec: value} if not leaf else {sec: {leaf: value}}
    return build_hardware(build_hardware(None, BASE, {}), sets, {})


def test_every_field_is_listed_here() -> None:
    """A new hardware field must be classified: cost figure, refused, or simulator-only."""
    assert _fields() == set(CHANGES) | set(REFUSED) | SIMULATOR_ONLY | ONLY_WITH_EPITOMES


@pytest.mark.parametrize("path", sorted(CHANGES))
def test_setting_moves_a_corrected_mode_figure(path: str) -> None:
    base = cost_network(NET, _hw())
    other = cost_network(NET, _hw(path, CHANGES[path]))
    assert any(other[k] != pytest.approx(base[k], rel=1e-9) for k in FIGURES), path


@pytest.mark.parametrize("path", sorted(REFUSED))
def test_unmodelled_setting_is_a_one_line_error(path: str) -> None:
    with pytest.raises(CrossnasError) as exc:
        cost_network(NET, _hw(path, REFUSED[path]))
    msg = str(exc.value)
    assert path in msg and "\n" not in msg and "allowed" in msg


def test_mnsim_mode_warns_once_per_ignored_setting(caplog: pytest.LogCaptureFixture) -> None:
    from crossnas.hw import params as P

    P._WARNED.discard("tile.pooling_units")
    hw = build_hardware(None, {"tile": {"pooling_units": 16}}, {})
    with caplog.at_level(logging.WARNING, logger="crossnas.hw.params"):
        a = cost_network(NET, hw)
        cost_network(NET, build_hardware(hw, {"tile": {"pooling_units": 8}}, {}))
    lines = [r.getMessage() for r in caplog.records if "tile.pooling_units" in r.getMessage()]
    assert len(lines) == 1 and "cost_mode=corrected" in lines[0]
    assert a["latency_ms"] == cost_network(NET, HardwareConfig())["latency_ms"]  # MNSIM: no effect


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "chip.tile_rows=2", "--set", "chip.tile_cols=2"], "tiles"),
        (["--set", "chip.digital_frequency_MHz=inf"], "digital_frequency_MHz"),
        (["--set", "chip.buffer_cycle_ns=1e308"], "buffer_cycle_ns"),
        (["--set", "cost_mode=corrected", "--set", "crossbar.cell_type=0T1R"], "cell_type"),
    ],
)
def test_absurd_hardware_is_exit_2_one_line(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    rc = main(["hw", "resnet18", "--json", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err


def test_billion_channel_layer_is_exit_2(tmp_path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    import json

    f = tmp_path / "net.json"
    f.write_text(json.dumps({"input_shape": [3, 32, 32], "layers": [
        {"type": "conv", "in_channels": 3, "out_channels": 10**9, "kernel_size": 3, "padding": 1}]}))
    rc = main(["hw", str(f), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "out_channels" in err and len(err.splitlines()) == 1


def test_memory_genes_move_figures_in_opposite_directions() -> None:
    """CiMNet's trade-off: a larger PE input buffer costs area but avoids re-fetching inputs."""
    small = cost_network(NET, _hw("tile.pe_input_buffer_KB", 0.125))
    large = cost_network(NET, _hw("tile.pe_input_buffer_KB", 16.0))
    assert large["area_mm2"] > small["area_mm2"]
    assert large["latency_ms"] < small["latency_ms"]
    spill = cost_network(NET, _hw("chip.global_buffer_KB", 1.0))
    fits = cost_network(NET, _hw("chip.global_buffer_KB", 256.0))
    assert spill["dram_MB"] > 0 == fits["dram_MB"]
    assert spill["components"]["energy_mJ"]["dram"] > 0 == fits["components"]["energy_mJ"]["dram"]
