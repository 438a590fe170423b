"""``crossnas run`` end to end on a tiny digits config (CPU, ~20 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from crossnas.cli.main import main

TINY = {
    "seed": 0,
    "data": {"dataset": "digits", "batch_size": 64},
    "space": {"n_layers": 2, "widths": [8, 16], "w_bits": [4, 6], "a_bits": [4, 6], "head": {"fc": [32]}},
    "train": {"epochs": 2, "lr": 0.05, "val_subnets": 1, "threads": 1},
    "search": {"mode": "paper", "w_acc": [0.99, 0.8], "normalization": {"samples": 40},
               "evolution": {"population": 6, "top_k": 2, "n_mutations": 3, "n_crossovers": 3, "generations": 2},
               "accuracy": {"bn_batches": 2}},
    "retrain": {"epochs": 2, "lr": 0.05, "threads": 1},
    "evaluate": {"mc_runs": 2, "device": {"variation_pct": 5}},
}
KEYS = ("pim_accuracy_mean", "pim_accuracy_std", "quantized_accuracy", "latency_ms", "energy_mJ", "edp_mJms",
        "area_mm2", "crossbars", "search_time_h", "winner_dir")


def _write(tmp_path: Path, cfg: dict, name: str = "tiny.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("run")
    cfg = _write(tmp, TINY)
    out = tmp / "run"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["run", "-c", str(cfg), "-o", str(out), "--json", "--no-progress"])
    assert rc == 0
    return cfg, out, json.loads(buf.getvalue().strip().splitlines()[-1])


@pytest.mark.slow
def test_run_writes_everything(finished_run: tuple[Path, Path, dict]) -> None:
    _, out, summary = finished_run
    for k in KEYS:
        assert k in summary, k
    assert 0 <= summary["pim_accuracy_mean"] <= 1 and summary["latency_ms"] > 0
    for p in ("winner/model.json", "winner/weights.pt", "winner/evaluation.json", "report/report.md",
              "report/report.html", "report/pareto.png", "search/best.json", "search/candidates.json", "summary.json"):
        assert (out / p).exists(), p
    ev = json.loads((out / "winner" / "evaluation.json").read_text())
    assert len(ev["pim_accuracy_runs"]) == 2
    assert summary["crossbars"] == ev["crossbars"] > 0  # the winner's total from its cost report
    html = (out / "report" / "report.html").read_text()
    assert "reported in the paper" in html and "data:image/png;base64," in html
    # every accuracy says which it is; the search's winners were scored on their own chips
    assert "PIM accuracy, retrained (%)" in html and "search: PIM score ± MC std (%)" in html
    best = json.loads((out / "search" / "best.json").read_text())
    assert all(w["accuracy_source"] == "pim" for w in best["winners"])
    cands = json.loads((out / "search" / "candidates.json").read_text())["candidates"]
    assert {c["accuracy_source"] for c in cands} <= {"pim", "supernet"} and any(
        c["accuracy_source"] == "pim" for c in cands)
    assert summary["search_accuracy"]["accuracy_source"] == "pim"


@pytest.mark.slow
def test_rerun_skips_every_stage(finished_run: tuple[Path, Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, out, summary = finished_run
    before = (out / "winner" / "weights.pt").stat().st_mtime_ns
    assert main(["run", "-c", str(cfg), "-o", str(out), "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("already done, skipped") == 5
    assert json.loads(captured.out.strip().splitlines()[-1]) == summary
    assert (out / "winner" / "weights.pt").stat().st_mtime_ns == before


@pytest.mark.slow
def test_other_config_is_refused_and_force_redoes(finished_run: tuple[Path, Path, dict], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = finished_run
    other = _write(tmp_path, {**TINY, "evaluate": {"mc_runs": 3, "device": {"variation_pct": 5}}}, "other.yaml")
    state_before = (out / "pipeline.json").read_text()
    assert main(["run", "-c", str(other), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "made by another config: stage 'evaluate'" in err and err.count("\n") == 1
    assert (out / "pipeline.json").read_text() == state_before
    assert main(["run", "-c", str(other), "-o", str(out), "--no-progress", "--force", "evaluate", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(json.loads((out / "winner" / "evaluation.json").read_text())["pim_accuracy_runs"]) == 3
    assert res["winner_dir"].endswith("winner")


@pytest.mark.slow
def test_forced_supernet_until_supernet_makes_the_next_run_search_again(
        finished_run: tuple[Path, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, shared, _ = finished_run
    out = tmp_path / "run"
    shutil.copytree(shared, out)  # the shared run stays as it is for the other tests
    # the issue used train.threads=2; log_every is as hash-neutral and keeps this process's torch threads
    assert main(["run", "-c", str(cfg), "-o", str(out), "--no-progress", "--force", "supernet", "--until", "supernet",
                 "--set", "train.log_every=7"]) == 0
    assert not (out / "search").exists() and not (out / "winner").exists()
    capsys.readouterr()
    # the stages after the search are covered by test_pipeline_chain.py; stop there to keep it short
    assert main(["run", "-c", str(cfg), "-o", str(out), "--no-progress", "--until", "search"]) == 0
    err = capsys.readouterr().err
    assert "[supernet] already done, skipped" in err and "[search] running" in err
    state = json.loads((out / "pipeline.json").read_text())["stages"]
    assert state["search"]["after"] == state["supernet"]["run"]
    assert (out / "search" / "best.json").exists()


@pytest.mark.slow
def test_winner_works_with_evaluate_and_export(finished_run: tuple[Path, Path, dict], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = finished_run
    assert main(["evaluate", str(out / "winner"), "--ideal", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["pim_accuracy_mean"] == res["quantized_accuracy"]
    assert main(["export", str(out), "--format", "mnsim", "-o", str(tmp_path / "mn")]) == 0
    assert (tmp_path / "mn" / "SimConfig.ini").exists()


def test_corrupt_checkpoint_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 1}})
    out = tmp_path / "run"
    assert main(["run", "-c", str(cfg), "-o", str(out), "--until", "supernet", "--no-progress"]) == 0
    ck = out / "supernet" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    (out / "supernet" / "supernet.pt").unlink()
    state = json.loads((out / "pipeline.json").read_text())
    state["stages"].pop("supernet")
    (out / "pipeline.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["run", "-c", str(cfg), "-o", str(out), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]
    assert len(err) == 1 and err[0].startswith("error:") and "checkpoint" in err[0]


def test_missing_cifar_folder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, {**TINY, "data": {"dataset": "cifar10", "root": str(tmp_path / "nope")}})
    assert main(["run", "-c", str(cfg), "-o", str(tmp_path / "run"), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]
    assert len(err) == 1 and err[0].startswith("error:") and "cifar-10-batches-py" in err[0]
