"""``crossnas hw`` end to end: tables, JSON, batches, ini files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hw_helpers import SHARED

from crossnas.cli.main import main
from crossnas.config.space import SpaceConfig
from crossnas.hw.examples import example_network
from crossnas.space.arch import ArchSpec
from crossnas.space.mnsim import arch_to_network_dict

KEYS = {"latency_ms", "energy_mJ", "edp_mJms", "area_mm2", "power_W", "layers", "components"}


def _run(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_builtin_json(capsys) -> None:  # noqa: ANN001
    rc, out, _ = _run(capsys, "hw", "vgg8", "--json")
    assert rc == 0
    rep = json.loads(out)
    assert KEYS <= set(rep) and rep["latency_ms"] > 0
    assert rep["layers"][0]["name"] == "conv0"


def test_table_output_mentions_totals_layers_components(capsys) -> None:  # noqa: ANN001
    rc, out, _ = _run(capsys, "hw", "lenet")
    assert rc == 0
    for word in ("latency_ms", "per layer", "per component", "conv0", "ADC"):
        assert word in out


def test_file_and_set_override(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    f = tmp_path / "net.json"
    f.write_text(json.dumps(example_network("lenet")))
    _, a, _ = _run(capsys, "hw", str(f), "--json")
    _, b, _ = _run(capsys, "hw", str(f), "--json", "--set", "adc.choice=1", "--set", "crossbar.rows=128")
    ra, rb = json.loads(a), json.loads(b)
    assert rb["energy_mJ"] != ra["energy_mJ"]


def test_hardware_file_equals_set(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    hwf = tmp_path / "hw.yaml"
    hwf.write_text("adc:\n  choice: 3\ncrossbar:\n  rows: 64\n  cols: 64\n")
    _, a, _ = _run(capsys, "hw", "lenet", "--json", "--hardware", str(hwf))
    _, b, _ = _run(capsys, "hw", "lenet", "--json", "--set", "adc.choice=3", "--set", "crossbar.rows=64",
                   "--set", "crossbar.cols=64")
    assert json.loads(a) == json.loads(b)


def test_batch_lines_in_order_with_per_line_hardware(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    nets = [arch_to_network_dict(ArchSpec.from_string(s), SpaceConfig(n_layers=2), (3, 32, 32), 10)
            for s in ("V32w5a5-S", "R64w9a9-V32w7a7", "v128w7a9-V64w5a5")]
    lines = [nets[0], {**nets[1], "hardware": {"adc": {"choice": 8}}}, nets[2]]
    f = tmp_path / "batch.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, out, _ = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 0
    got = [json.loads(x) for x in out.strip().splitlines()]
    assert len(got) == 3
    single = tmp_path / "one.json"
    single.write_text(json.dumps(nets[1]))
    _, one, _ = _run(capsys, "hw", str(single), "--json", "--set", "adc.choice=8")
    assert got[1] == json.loads(one)


@pytest.mark.skipif(not (SHARED / "SimConfig.ini").is_file(), reason="shared reference folder absent")
def test_mnsim_ini_default_file_gives_default_costs(capsys) -> None:  # noqa: ANN001
    _, a, _ = _run(capsys, "hw", "vgg8", "--json")
    _, b, _ = _run(capsys, "hw", "vgg8", "--json", "--mnsim-ini", str(SHARED / "SimConfig.ini"))
    assert json.loads(a)["latency_ms"] == json.loads(b)["latency_ms"]


def test_mnsim_ini_values_are_read(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from crossnas.hw.mnsim_ini import hardware_from_mnsim_ini

    ini = tmp_path / "SimConfig.ini"
    ini.write_text("[Crossbar level]\nXbar_Size = 128,64\n[Interface level]\nADC_Choice = 4\nDAC_Choice = 2\n"
                   "[Tile level]\nPE_Num = 4,4\n[Device level]\nDevice_Level = 4\n"
                   "Device_Resistance = 1e6,3e4,1.5e4,1e4\n")
    hw = hardware_from_mnsim_ini(ini)
    assert (hw.crossbar.rows, hw.crossbar.cols, hw.adc.choice, hw.adc.bits, hw.dac.bits) == (128, 64, 4, 6, 2)
    assert hw.tile.pes_per_tile == 16 and hw.device.levels == 4 and hw.device.lrs_ohm == 1e4


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("this is not an ini\n", "SimConfig.ini"),
        ("[Crossbar level]\nXbar_Size = big\n", "Xbar_Size"),
        ("[Crossbar level]\nXbar_Size = 0,0\n", "crossbar"),
        ("[Interface level]\nADC_Choice = 12\n", "choice"),
        ("[Device level]\nDevice_Level = 4\n", "Device_Resistance"),
        ("[Something]\na = 1\n", "no MNSIM section"),
    ],
)
def test_malformed_ini_is_one_line_exit_2(tmp_path: Path, capsys, content: str, needle: str) -> None:  # noqa: ANN001
    ini = tmp_path / "bad.ini"
    ini.write_text(content)
    rc, out, err = _run(capsys, "hw", "lenet", "--mnsim-ini", str(ini))
    assert rc == 2 and out == ""
    assert err.startswith("error:") and needle in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "crossbar.rows=0"], "crossbar.rows"),
        (["--set", "crossbar.rows=abc"], "crossbar.rows"),
        (["--set", "adc.bits=17"], "adc.bits"),
        (["--set", "adc.choice=9"], "choice"),
        (["--set", "tile.pe_rowz=2"], "unknown key"),
        (["--set", "device.levels=3"], "power of two"),
    ],
)
def test_bad_hardware_is_one_line_exit_2(tmp_path: Path, capsys, args: list[str], needle: str) -> None:  # noqa: ANN001
    rc, out, err = _run(capsys, "hw", "lenet", "--json", *args)
    assert rc == 2 and out == ""
    assert needle in err and err.count("\n") == 1


def test_bad_network_file_exit_2_and_nothing_written(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    d = example_network("lenet")
    d["layers"][4]["in_channels"] = 5  # shapes don't chain
    f = tmp_path / "net.json"
    f.write_text(json.dumps(d))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = _run(capsys, "hw", str(f), "--json")
    assert rc == 2 and out == "" and "in_channels" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    f.write_text("{not json")
    rc, _, err = _run(capsys, "hw", str(f))
    assert rc == 2 and "not valid JSON" in err


def test_bad_batch_line_names_the_line(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    f = tmp_path / "b.jsonl"
    good = json.dumps(example_network("lenet"))
    f.write_text(good + "\n" + json.dumps({**example_network("lenet"), "hardware": {"adc": {"choice": 0}}}) + "\n")
    rc, out, err = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 2 and out == "" and "line 2" in err


def test_network_and_batch_are_exclusive(capsys) -> None:  # noqa: ANN001
    rc, _, err = _run(capsys, "hw")
    assert rc == 2 and "--batch" in err


def test_parallel_batch_equals_serial_and_bad_line_prints_nothing(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """Large ``--batch --json`` runs are split over forked workers: same lines, same order; one
    bad line anywhere is one error naming it, and no partial output."""
    from crossnas.cli import hw_cmd

    specs = ("V32w5a5-S", "R64w9a9-V32w7a7", "v128w7a9-V64w5a5", "S-V16w5a5")
    nets = [arch_to_network_dict(ArchSpec.from_string(s), SpaceConfig(n_layers=2), (3, 32, 32), 10) for s in specs]
    lines = [{**nets[i % 4], "hardware": {"adc": {"choice": 1 + i % 8}}} for i in range(13)]
    f = tmp_path / "batch.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, serial, _ = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 0 and len(serial.splitlines()) == 13
    monkeypatch.setattr(hw_cmd, "PARALLEL_MIN_LINES", 2)
    monkeypatch.setattr(hw_cmd, "_workers", lambda: 3)
    rc, parallel, _ = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 0 and parallel == serial
    lines[9] = {**nets[0], "hardware": {"chip": {"tile_rows": 1, "tile_cols": 1}}}
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, out, err = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 2 and out == "" and "line 10" in err and "tiles" in err and len(err.strip().splitlines()) == 1


def test_workers_env_is_checked_and_one_means_serial(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """``CROSSNAS_WORKERS`` sets the forked workers of a large batch; 1 keeps it in one
    process (same output), a value that is not a positive integer is a one-line error."""
    import multiprocessing

    from crossnas.cli import hw_cmd

    net = arch_to_network_dict(ArchSpec.from_string("V32w5a5-S"), SpaceConfig(n_layers=2), (3, 32, 32), 10)
    f = tmp_path / "batch.jsonl"
    f.write_text("\n".join(json.dumps({**net, "hardware": {"adc": {"choice": 1 + i % 8}}}) for i in range(5)) + "\n")
    monkeypatch.setattr(hw_cmd, "PARALLEL_MIN_LINES", 2)
    monkeypatch.setenv("CROSSNAS_WORKERS", "1")
    ctx = multiprocessing.get_context("fork")

    def no_pool(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("CROSSNAS_WORKERS=1 must not start workers")

    monkeypatch.setattr(type(ctx), "Pool", no_pool)
    rc, out, _ = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 0 and len(out.splitlines()) == 5
    for bad in ("0", "two", "-3", ""):
        monkeypatch.setenv("CROSSNAS_WORKERS", bad)
        rc, out, err = _run(capsys, "hw", "--batch", str(f), "--json")
        assert rc == 2 and out == "" and "CROSSNAS_WORKERS" in err and len(err.strip().splitlines()) == 1


def test_batch_line_with_bad_utf8_is_named(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    net = arch_to_network_dict(ArchSpec.from_string("V32w5a5-S"), SpaceConfig(n_layers=2), (3, 32, 32), 10)
    f = tmp_path / "batch.jsonl"
    f.write_bytes(json.dumps(net).encode() + b"\n" + b'{"input_shape": "\xff\xfe"}\n')
    for extra in ((), ("--json",)):
        rc, out, err = _run(capsys, "hw", "--batch", str(f), *extra)
        assert rc == 2 and "line 2" in err and "UTF-8" in err and len(err.strip().splitlines()) == 1


def test_batch_leaves_the_garbage_collector_as_it_was(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """``--batch --json`` turns the cyclic GC off while it runs and back on after (the CLI
    also runs inside other programs)."""
    import gc

    net = arch_to_network_dict(ArchSpec.from_string("V32w5a5-S"), SpaceConfig(n_layers=2), (3, 32, 32), 10)
    f = tmp_path / "batch.jsonl"
    f.write_text(json.dumps(net) + "\n")
    assert gc.isenabled()
    rc, out, _ = _run(capsys, "hw", "--batch", str(f), "--json")
    assert rc == 0 and out.count("\n") == 1 and gc.isenabled()
