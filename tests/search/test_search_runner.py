"""run_search end to end (in process): outputs, resume, stale and duplicate claims, storage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.search import SearchProblem, SyntheticAccuracy, run_search
from crossnas.search.objectives import paper_fitness
from crossnas.search.pareto import pareto_mask
from crossnas.search.store import TrialStore, WorkerInfo, resolve_storage_url

TINY = {"evolution": {"population": 8, "top_k": 3, "n_mutations": 4, "n_crossovers": 4, "generations": 3},
        "normalization": {"samples": 40}, "accuracy": {"fidelity": "synthetic"}}


def problem(**over) -> SearchProblem:
    cfg = SearchConfig.model_validate({**TINY, **over})
    return SearchProblem(cfg, SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)


def trials(run_dir: Path, name: str = "crossnas") -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    st = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=st).get_trials(deepcopy=False)


class FailingAccuracy(SyntheticAccuracy):
    """Synthetic accuracy that crashes after ``n`` networks (a worker dying mid-search)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def evaluate(self, candidates):
        if self.left <= 0:
            raise RuntimeError("simulated crash")
        self.left -= len(candidates)
        return super().evaluate(candidates)


def test_paper_search_outputs(tmp_path: Path) -> None:
    res = run_search(problem(), SyntheticAccuracy, tmp_path)
    search = json.loads((tmp_path / "search.json").read_text())
    best = json.loads((tmp_path / "best.json").read_text())
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    assert (tmp_path / "study.journal").is_file()
    assert search["evaluations"] == len(res.results) == res.summary["evaluations"]
    assert set(search["normalization"]["ranges"]) == {"latency_ms", "energy_mJ", "edp_mJms", "area_mm2"}
    assert search["timings"]["evaluated_here"] == len(res.results)
    # one winner per w_acc, the fittest of all evaluations, with the full hardware dump
    assert [w["w_acc"] for w in best["winners"]] == [0.99, 0.8]
    from crossnas.search.objectives import Ranges

    ranges = Ranges({k: tuple(v) for k, v in search["normalization"]["ranges"].items()})
    for w in best["winners"]:
        top = max(paper_fitness(e, w["w_acc"], ranges) for e in res.results.values())
        assert w["fitness"] == pytest.approx(top)
        assert HardwareConfig.model_validate(w["hardware"]).crossbar.rows == w["hardware_genes"]["crossbar.size"]
    assert best["winners"][0]["metrics"]["accuracy"] >= best["winners"][1]["metrics"]["accuracy"]
    # the front is non-dominated and within the evaluations
    pts = [[-f["metrics"]["accuracy"], f["metrics"]["edp_mJms"]] for f in pareto["front"]]
    assert all(pareto_mask(__import__("numpy").array(pts)))
    assert 0 < pareto["hypervolume"] <= 1
    # every trial: genome params, metrics, generation, fidelity, wall time
    ts = trials(tmp_path)
    assert len(ts) == len(res.results)
    t = ts[-1]
    assert t.values[0] == res.results[t.user_attrs["key"]].accuracy
    assert {"key", "gen", "fidelity", "cost", "eval", "worker"} <= set(t.user_attrs)
    assert t.user_attrs["eval"]["eval_s"] >= 0
    g = problem().genomes()
    assert g.key(__import__("numpy").array(t.user_attrs["genome"])) == t.user_attrs["key"]
    assert max(x.user_attrs["gen"] for x in ts) == 2


def test_rerun_is_a_no_op_and_deterministic(tmp_path: Path) -> None:
    a = run_search(problem(), SyntheticAccuracy, tmp_path / "a")
    again = run_search(problem(), SyntheticAccuracy, tmp_path / "a")
    assert again.summary["evaluated_here"] == 0
    assert again.results.keys() == a.results.keys()
    run_search(problem(), SyntheticAccuracy, tmp_path / "b")
    assert json.loads((tmp_path / "a" / "best.json").read_text()) == json.loads((tmp_path / "b" / "best.json").read_text())


def test_crash_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    ref = run_search(problem(), SyntheticAccuracy, tmp_path / "ref")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_search(problem(), lambda: FailingAccuracy(10), tmp_path / "x")
    before = {t.user_attrs["key"]: t.values for t in trials(tmp_path / "x") if t.state.name == "COMPLETE"}
    assert 0 < len(before) < len(ref.results)
    res = run_search(problem(), SyntheticAccuracy, tmp_path / "x")
    after = [t for t in trials(tmp_path / "x") if t.state.name == "COMPLETE"]
    keys = [t.user_attrs["key"] for t in after]
    assert len(keys) == len(set(keys))  # nothing evaluated twice
    assert set(keys) == set(ref.results)  # same search as without the crash
    assert all(t.values == before[t.user_attrs["key"]] for t in after if t.user_attrs["key"] in before)
    assert res.summary["evaluated_here"] == len(ref.results) - len(before)
    strip = [{k: v for k, v in w.items() if k != "trial"} for w in res.best["winners"]]  # numbers shift by failed trials
    assert strip == [{k: v for k, v in w.items() if k != "trial"} for w in ref.best["winners"]]


def test_stale_and_duplicate_claims(tmp_path: Path) -> None:
    p = problem()
    url = resolve_storage_url(None, tmp_path)
    g = p.genomes()
    a = TrialStore(url, "crossnas", g, p.fingerprint())
    b = TrialStore(url, "crossnas", g, p.fingerprint())
    import numpy as np

    rng = np.random.default_rng(0)
    vec = g.random(rng)
    while not g.is_valid(vec):
        vec = g.random(rng)
    cand = g.candidate(vec)
    from crossnas.search.costs import CostCache

    cost = CostCache(g).costs([cand])
    ida = a.claim([cand], cost, 0, "synthetic")
    idb = b.claim([cand], cost, 0, "synthetic")  # a second worker claims the same genome later
    view_b = b.read()
    assert b.owned(idb, [cand.key], view_b) == [False]
    assert a.owned(ida, [cand.key], a.read()) == [True]
    dup = [t for t in trials(tmp_path) if t._trial_id == idb[0]][0]
    assert dup.state.name == "FAIL" and dup.user_attrs["duplicate_of"] == 0
    # a claim by a process that no longer exists on this host is stale: failed and redone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    ghost = TrialStore(url, "crossnas", g, p.fingerprint())
    me = WorkerInfo.current()
    ghost.worker = WorkerInfo("ghost", me.host, me.boot, pid, "1")
    vec2 = g.mutate(vec, 1.0, rng)
    while not g.is_valid(vec2):
        vec2 = g.mutate(vec, 1.0, rng)
    cand2 = g.candidate(vec2)
    ghost.claim([cand2], CostCache(g).costs([cand2]), 0, "synthetic")
    view = a.read()
    assert cand2.key not in view.running
    assert [t.state.name for t in trials(tmp_path) if t.user_attrs["key"] == cand2.key] == ["FAIL"]
    # a live worker of another host is kept until its lease expires
    other = TrialStore(url, "crossnas", g, p.fingerprint(), lease_s=300)
    other.worker = WorkerInfo("remote", "elsewhere", "x", 1, None)
    other.heartbeat(force=True)
    other.claim([cand2], CostCache(g).costs([cand2]), 0, "synthetic")
    assert cand2.key in a.read().running
    a.lease_s = 1e-9
    assert cand2.key not in a.read().running


def test_constraints_and_pareto_mode(tmp_path: Path) -> None:
    res = run_search(problem(mode="pareto", objectives=["edp_mJms", "area_mm2"],
                             constraints={"max_area_mm2": 400.0}), SyntheticAccuracy, tmp_path)
    assert res.results and all(e.cost.area_mm2 <= 400.0 for e in res.results.values())
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    assert pareto["objectives"] == ["accuracy", "edp_mJms", "area_mm2"]
    assert len(pareto["front"]) == res.summary["front_size"] > 0
    assert json.loads((tmp_path / "search.json").read_text())["rejected"]["over_constraints"] > 0


def test_bad_storage_and_foreign_study(tmp_path: Path) -> None:
    with pytest.raises(CrossnasError, match=r"--storage postgresql://u:\*\*\*@127.0.0.1:1/x: cannot open"):
        run_search(problem(), SyntheticAccuracy, tmp_path, storage="postgresql://u:secret@127.0.0.1:1/x")
    with pytest.raises(CrossnasError, match="cannot open"):
        run_search(problem(), SyntheticAccuracy, tmp_path, storage="sqlite:////nonexistent-dir/x/y.db")
    run_search(problem(), SyntheticAccuracy, tmp_path / "r")
    with pytest.raises(CrossnasError, match="different config"):
        run_search(problem(seed=5), SyntheticAccuracy, tmp_path / "r")


def test_sqlite_storage_url(tmp_path: Path) -> None:
    small = {"evolution": {"population": 6, "top_k": 2, "n_mutations": 3, "n_crossovers": 3, "generations": 2}}
    res = run_search(problem(**small), SyntheticAccuracy, tmp_path, storage=f"sqlite:///{tmp_path}/s.db")
    ref = run_search(problem(**small), SyntheticAccuracy, tmp_path / "j")
    assert res.results.keys() == ref.results.keys()
    assert os.path.getsize(tmp_path / "s.db") > 0
