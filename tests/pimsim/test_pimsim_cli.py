"""``crossnas evaluate`` on a saved model directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossnas.cli.evaluate_cmd import resolve_hardware
from crossnas.cli.main import main
from crossnas.config.hardware import HardwareConfig


def test_resolve_hardware_merges_file_then_sets(tmp_path: Path) -> None:
    base = HardwareConfig().with_updates(crossbar={"rows": 64}, adc={"bits": 8})
    f = tmp_path / "hw.yaml"
    f.write_text("adc:\n  bits: 5\ndevice:\n  variation_pct: 3\n")
    hw = resolve_hardware(base, f, ["adc.range_mode=fixed", "device.levels=4"])
    assert hw.crossbar.rows == 64  # kept from the model
    assert hw.adc.bits == 5 and hw.device.variation_pct == 3  # from the file
    assert hw.adc.range_mode == "fixed" and hw.device.levels == 4  # from --set


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    modeldir = pytest.importorskip("crossnas.supernet.modeldir")
    from crossnas.config.data import DataConfig
    from crossnas.config.space import HeadConfig, SpaceConfig
    from crossnas.data import load_data
    from crossnas.space.arch import random_arch
    from crossnas.supernet import build_static

    # small bits and 2-bit DAC/cells keep the simulation cheap (few cycles and slices)
    space = SpaceConfig(
        n_layers=2,
        widths=(8, 16),
        w_bits=(4,),
        a_bits=(4,),
        head=HeadConfig(fc=(32,), w_bits=5, a_bits=5),
    )
    data_cfg = DataConfig()
    data = load_data(data_cfg)
    spec = random_arch(space, np.random.default_rng(1), data.input_shape[1])
    torch.manual_seed(0)
    net = build_static(spec, space, data.input_shape, data.n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only wait on a busy CPU
    try:
        for i in range(40):  # a few steps so the accuracy is above chance
            idx = torch.arange(i * 32, (i + 1) * 32) % len(data.train_x)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(data.train_x[idx]), data.train_y[idx]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    path = tmp_path_factory.mktemp("model") / "m"
    hw = HardwareConfig().with_updates(
        crossbar={"rows": 64},
        device={"variation_pct": 20, "levels": 4},
        dac={"bits": 2},
        adc={"bits": 5},
    )
    modeldir.save_model_dir(
        path,
        net,
        spec=spec,
        space=space,
        input_shape=data.input_shape,
        n_classes=data.n_classes,
        data_cfg=data_cfg,
        hardware=hw,
        metrics={},
    )
    return path


def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = main(["evaluate", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_evaluate_ideal_pim_accuracy_equals_quantized(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _run_json([str(model_dir), "--ideal", "--mc", "2"], capsys)
    assert r["pim_accuracy_mean"] == r["quantized_accuracy"]
    assert r["pim_accuracy_runs"] == [r["quantized_accuracy"]] * 2 and r["pim_accuracy_std"] == 0
    assert 0.2 < float(r["quantized_accuracy"]) <= 1  # type: ignore[arg-type]
    for key in ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2", "power_W"):
        assert float(r[key]) > 0  # type: ignore[arg-type]


@pytest.mark.slow
def test_evaluate_monte_carlo_json_and_text(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _run_json([str(model_dir), "--mc", "3", "--seed", "4", "--limit", "150"], capsys)
    runs = r["pim_accuracy_runs"]
    assert (
        isinstance(runs, list) and len(runs) == 3 and len(set(runs)) > 1
    )  # variation 20% from the model's hw
    assert r["pim_accuracy_mean"] == pytest.approx(float(np.mean(runs)))
    assert r["pim_accuracy_std"] == pytest.approx(float(np.std(runs, ddof=1)))
    again = _run_json([str(model_dir), "--mc", "3", "--seed", "4", "--limit", "150"], capsys)
    assert again["pim_accuracy_runs"] == runs
    no_var = _run_json(
        [str(model_dir), "--mc", "3", "--limit", "150", "--set", "device.variation_pct=0"], capsys
    )
    assert len(set(no_var["pim_accuracy_runs"])) == 1  # type: ignore[arg-type]
    assert main(["evaluate", str(model_dir), "--mc", "1", "--limit", "50"]) == 0
    text = capsys.readouterr().out
    assert "PIM accuracy:" in text and "quantized (digital) accuracy:" in text and "latency" in text


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["device.levels=3"], "levels"),
        (["adc.range_mode=fixed", "adc.bits=1", "crossbar.rows=4096"], "adc.range_mode"),
        (["adc.range_mode=clever"], "range_mode"),
    ],
)
def test_evaluate_bad_settings_one_line_exit_2(
    model_dir: Path, capsys: pytest.CaptureFixture[str], sets: list[str], needle: str
) -> None:
    args = ["evaluate", str(model_dir), "--mc", "1", "--limit", "20"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and len(err.splitlines()) == 1


def test_evaluate_missing_model_dir_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("crossnas.supernet.modeldir")
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_evaluate_calibrates_on_training_images_and_scores_times(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import crossnas.pimsim as pimsim
    from crossnas.data import load_data
    from crossnas.pipeline.stages import CALIBRATION_IMAGES
    from crossnas.supernet.modeldir import load_model_dir

    seen: list[tuple[float, object]] = []
    real = pimsim.pim_accuracy

    def spy(module, hardware, x, y, **kw):  # type: ignore[no-untyped-def]
        seen.append((hardware.device.time_s, kw.get("calibration_x")))
        return real(module, hardware, x, y, **kw)

    monkeypatch.setattr(pimsim, "pim_accuracy", spy)
    r = _run_json([str(model_dir), "--mc", "1", "--limit", "40", "--set", "device.type=PCM",
                   "--set", "device.variation_pct=0", "--set", "device.drift_compensation=false",
                   "--times", "60,1y"], capsys)
    train = load_data(load_model_dir(model_dir).data_cfg).train_x[:CALIBRATION_IMAGES]
    assert [t for t, _ in seen] == [0.0, 60.0, 31536000.0]
    assert all(torch.equal(c, train) for _, c in seen)  # type: ignore[arg-type]
    curve = r["pim_accuracy_vs_time"]
    assert isinstance(curve, list) and [p["time_s"] for p in curve] == [60.0, 31536000.0]
    assert r["drift_compensation"] is False and all(0 <= p["pim_accuracy_mean"] <= 1 for p in curve)


@pytest.mark.parametrize(("args", "needle"), [(["--times", "1q"], "--times"), (["--times", "-5"], "--times"),
                                              (["--times", "60", "--ideal"], "--ideal")])
def test_evaluate_bad_times_one_line_exit_2(
    model_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(["evaluate", str(model_dir), "--mc", "1", "--limit", "20", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and len(err.splitlines()) == 1


def test_parse_times_units() -> None:
    from crossnas.cli.evaluate_cmd import format_time, parse_times

    assert parse_times("60, 1h,1d,1y,2min,1w,0") == [60.0, 3600.0, 86400.0, 31536000.0, 120.0, 604800.0, 0.0]
    assert format_time(31536000.0) == "1 y" and format_time(90.0) == "1.5 min" and format_time(5) == "5 s"


def test_resolve_hardware_switching_the_device_type_takes_its_preset(tmp_path: Path) -> None:
    base = HardwareConfig().with_updates(device={"variation_pct": 2.0})
    hw = resolve_hardware(base, None, ["device.type=PCM", "device.time_s=86400"])
    assert (hw.device.type, hw.device.noise_model, hw.device.levels, hw.device.lrs_ohm) == ("PCM", "pcm", 4, 4e4)
    assert hw.device.variation_pct == 2.0 and hw.device.time_s == 86400  # explicit values are kept
    f = tmp_path / "hw.yaml"
    f.write_text("device:\n  type: FeFET\n  levels: 8\n")
    hw = resolve_hardware(base, f, None)
    assert (hw.device.type, hw.device.read_noise_pct, hw.device.levels) == ("FeFET", 0.5, 8)
