"""``crossnas search`` / ``crossnas compare`` CLI: real supernet, JSON summary, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crossnas.cli.main import main

TINY_SPACE = {"n_layers": 2, "widths": [8, 16], "w_bits": [5, 7], "a_bits": [5, 7], "head": {"fc": [16]}}
TINY_SEARCH = {"evolution": {"population": 6, "top_k": 2, "n_mutations": 3, "n_crossovers": 3, "generations": 2},
               "normalization": {"samples": 30}, "accuracy": {"bn_batches": 2}}


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A supernet trained for one short epoch on digits (the real thing, tiny)."""
    from crossnas.config.supernet_run import SupernetRunConfig
    from crossnas.train import train_supernet

    out = tmp_path_factory.mktemp("supernet")
    cfg = SupernetRunConfig.model_validate({"space": TINY_SPACE, "train": {"epochs": 1, "val_subnets": 0},
                                            "data": {"batch_size": 128}})
    train_supernet(cfg, out)
    return out


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_search_on_a_trained_supernet(supernet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    search = {**TINY_SEARCH, "accuracy": {**TINY_SEARCH["accuracy"], "screen": 0}}
    cfg = write(tmp_path / "c.yaml", {"search": search, "hardware": {}, "space": TINY_SPACE,
                                      "train": {"epochs": 1}})
    code = main(["search", "-c", str(cfg), "-o", str(tmp_path / "run"), "--supernet", str(supernet_dir), "--json",
                 "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert 12 <= summary["evaluations"] <= 18  # 6 + 6 children per w_acc run (runs may share children)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    for w in best["winners"]:  # pim_aware (the default): winners carry their PIM score
        assert 0.0 <= w["metrics"]["accuracy"] <= 1.0 and w["accuracy_source"] == "pim"
        assert w["metrics"]["accuracy"] == w["metrics"]["pim_accuracy_mean"]
    search = json.loads((tmp_path / "run" / "search.json").read_text())
    assert search["identity"]["supernet_weights"] == "supernet.pt" and search["info"]["supernet_finished"]
    # the supernet's accuracy is the scorer's: check one winner directly
    from crossnas.data import load_data
    from crossnas.space import ArchSpec
    from crossnas.supernet import SubnetScorer
    from crossnas.train import load_supernet

    run = load_supernet(supernet_dir)
    scorer = SubnetScorer(run.net, load_data(run.config.data), bn_batches=2)
    w = best["winners"][0]
    spec = ArchSpec.from_string(w["arch"])
    assert scorer.score(spec) == pytest.approx(w["metrics"]["supernet_accuracy"])
    # the PIM score is the simulator's, on the candidate's own hardware: check it directly
    from crossnas.config.hardware import HardwareConfig
    from crossnas.pimsim import pim_accuracy

    data = load_data(run.config.data)
    hw = HardwareConfig.model_validate(w["hardware"])
    res = pim_accuracy(scorer.extract(spec), hw, data.val_x[:256], data.val_y[:256], mc_runs=2, seed=0,
                       calibration_x=data.train_x[:64])
    # the on-chip estimate: the supernet score minus what the chip lost on the simulated subset
    drop = res.quantized_accuracy - res.mean
    expected = min(max(w["metrics"]["supernet_accuracy"] - max(drop, 0.0), 0.0), 1.0)
    assert w["metrics"]["pim_accuracy_mean"] == pytest.approx(expected)
    assert res.std == pytest.approx(w["metrics"]["pim_accuracy_std"])


@pytest.mark.slow
def test_pim_fidelity(supernet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    search = {**TINY_SEARCH, "evolution": {"population": 2, "top_k": 1, "generations": 1},
              "accuracy": {"fidelity": "pim", "val_subset": 32, "bn_batches": 2}, "hardware_genes": {"adc.choice": [7, 8]}}
    cfg = write(tmp_path / "p.yaml", {"search": search})
    assert main(["search", "-c", str(cfg), "-o", str(tmp_path / "run"), "--supernet", str(supernet_dir),
                 "--json", "--no-progress"]) == 0
    capsys.readouterr()
    pareto = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert pareto["front"] and all(f["fidelity"] == "pim" for f in pareto["front"])


def test_supernet_space_mismatch_and_missing(supernet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = {**TINY_SPACE, "widths": [8, 32]}
    cfg = write(tmp_path / "c.yaml", {"search": TINY_SEARCH, "space": other})
    assert main(["search", "-c", str(cfg), "-o", str(tmp_path / "r"), "--supernet", str(supernet_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: space in") and "widths" in err and "\n" not in err
    assert main(["search", "-c", str(cfg), "-o", str(tmp_path / "empty")]) == 2
    assert "no trained supernet" in capsys.readouterr().err


def synthetic_cfg(tmp_path: Path, **over) -> Path:
    return write(tmp_path / "s.yaml", {"search": {**TINY_SEARCH, "accuracy": {"fidelity": "synthetic"}, **over}})


@pytest.mark.parametrize(
    ("over", "args", "needle"),
    [
        ({"hardware_genes": {"tile.nope": [1]}}, [], "search.hardware_genes: unknown hardware gene 'tile.nope'"),
        ({"hardware_genes": {"tile.pe_rows": []}}, [], "tile.pe_rows: choices must not be empty"),
        ({"constraints": {"max_latency_ms": 1e-12}, "max_rejected": 100}, [], "no candidate met max_latency_ms=1e-12"),
        ({}, ["--storage", "postgresql://x:pw@127.0.0.1:1/db"], "cannot open"),
        ({}, ["--mode", "fast"], "--mode 'fast'"),
        ({"bogus": 1}, [], "search.bogus: unknown key"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, over: dict, args: list,
                                      needle: str) -> None:
    cfg = synthetic_cfg(tmp_path, **over)
    assert main(["search", "-c", str(cfg), "-o", str(tmp_path / "r"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r" / "best.json").exists()


def test_mode_flag_and_searchable_hardware_fields(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    genes = {"crossbar.size": [64, 128], "device.levels": [2, 4], "tile.pe_rows": [1, 2],
             "tile.inter_tile_bandwidth_Gbps": [10.0, 40.0]}
    cfg = synthetic_cfg(tmp_path, hardware_genes=genes)
    assert main(["search", "-c", str(cfg), "-o", str(tmp_path / "r"), "--mode", "pareto", "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "pareto" and summary["front_size"] > 0
    for w in json.loads((tmp_path / "r" / "best.json").read_text())["winners"]:
        assert set(w["hardware_genes"]) == set(genes)
        assert w["hardware"]["device"]["levels"] == w["hardware_genes"]["device.levels"]
        assert w["hardware"]["tile"]["pe_rows"] == w["hardware_genes"]["tile.pe_rows"]


def test_compare_runs_every_method(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = synthetic_cfg(tmp_path)
    assert main(["compare", "-c", str(cfg), "-o", str(tmp_path / "r"), "--seeds", "0,1", "--budget", "14", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["methods"]) == {"joint", "joint_paper", "random", "two_stage", "hw_blind"}
    for row in res["methods"].values():
        assert len(row["runs"]) == 2
        assert all(1 <= r["evaluations"] <= 14 and r["hypervolume"] >= 0 for r in row["runs"])
    assert (tmp_path / "r" / "compare.md").read_text().startswith("| method")
    # accuracy-0 figures keep their keys; the reference-accuracy ones (default 0.8) come next to them
    assert res["reference_accuracy"] == 0.8 and set(res["verdict_at_reference"]) == set(res["verdict"])
    for row in res["methods"].values():
        assert all(0 <= r["hypervolume_at_reference"] <= r["hypervolume"] for r in row["runs"])
    assert sorted(p.name for p in (tmp_path / "r" / "compare_runs").iterdir())[0] == "hw_blind-seed0.json"
    # a rerun reuses every saved run (nothing scored), at another reference accuracy too
    assert main(["compare", "-c", str(cfg), "-o", str(tmp_path / "r"), "--seeds", "0,1", "--budget", "14", "--json",
                 "--reference-accuracy", "0.9"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["runs_reused"] == 10 and again["accuracy_evaluations"] == 0 and again["reference_accuracy"] == 0.9
    assert again["methods"]["joint"]["hypervolume_mean"] == res["methods"]["joint"]["hypervolume_mean"]
    assert main(["compare", "-c", str(cfg), "-o", str(tmp_path / "r"), "--methods", "joint,foo"]) == 2
    capsys.readouterr()
    # another config in the same DIR: refused, one line
    assert main(["compare", "-c", str(cfg), "-o", str(tmp_path / "r"), "--seeds", "0,1", "--budget", "12"]) == 2
    err = capsys.readouterr().err
    assert "holds compare runs of another config (differs in: budget)" in err and err.count("\n") == 1
    assert main(["compare", "-c", str(cfg), "-o", str(tmp_path / "r"), "--reference-accuracy", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: --reference-accuracy 1: must be in [0, 1)")
