"""Real processes: SIGKILL mid-search and rerun, parallel workers, PostgreSQL scale-out."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.search import SearchProblem, SyntheticAccuracy, run_search

pytestmark = pytest.mark.slow

SEARCH = {
    "accuracy": {"fidelity": "synthetic", "synthetic_delay_s": 0.03},
    "w_acc": [0.9],
    "evolution": {"population": 12, "top_k": 3, "n_mutations": 6, "n_crossovers": 6, "generations": 4},
    "normalization": {"samples": 40},
}


def write_config(path: Path, **search_over) -> Path:
    path.write_text(yaml.safe_dump({"search": {**SEARCH, **search_over}, "hardware": {}}))
    return path


def reference(tmp: Path, **search_over) -> set[str]:
    """Keys of an uninterrupted in-process run of the same search."""
    cfg = SearchConfig.model_validate({**SEARCH, **search_over})
    p = SearchProblem(cfg, SpaceConfig(), HardwareConfig(), (1, 8, 8), 10,
                      {"fidelity": "synthetic", "data": __import__("crossnas.config.data", fromlist=["x"]).DataConfig().model_dump(mode="json")})
    res = run_search(p, lambda: SyntheticAccuracy(), tmp)
    return set(res.results)


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "crossnas.cli.main", "search", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def load_trials(storage: str, name: str = "crossnas") -> list[optuna.trial.FrozenTrial]:
    if "://" not in storage:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        st = JournalStorage(JournalFileBackend(storage))
    else:
        st = optuna.storages.RDBStorage(storage.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        return optuna.load_study(study_name=name, storage=st).get_trials(deepcopy=False)
    except KeyError:
        return []


def wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Polls ``pred`` until true; fails if ``proc`` ends first or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def n_complete(storage: str) -> int:
    return sum(t.state.name == "COMPLETE" for t in load_trials(storage))


def check_complete(trials: list, expected: set[str]) -> None:
    done = [t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE"]
    assert set(done) == expected
    dup = [k for k, n in Counter(done).items() if n > 1]
    assert not dup, f"evaluated twice: {dup}"
    assert not [t for t in trials if t.state.name == "RUNNING"]


def test_sigkill_mid_search_then_rerun(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml")
    expected = reference(tmp_path / "ref")
    run = tmp_path / "run"
    journal = str(run / "study.journal")
    proc = cli("-c", str(cfg), "-o", str(run))
    try:
        wait_for(lambda: os.path.exists(journal) and n_complete(journal) >= 15, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {t.user_attrs["key"]: (t.number, t.values) for t in load_trials(journal) if t.state.name == "COMPLETE"}
    assert 15 <= len(before) < len(expected)
    assert not (run / "best.json").exists()
    rerun = subprocess.run([sys.executable, "-m", "crossnas.cli.main", "search", "-c", str(cfg), "-o", str(run),
                            "--json", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    trials = load_trials(journal)
    check_complete(trials, expected)
    after = {t.user_attrs["key"]: (t.number, t.values) for t in trials if t.state.name == "COMPLETE"}
    assert all(after[k] == v for k, v in before.items())  # nothing lost or recomputed
    assert summary["evaluated_here"] == len(expected) - len(before)
    assert summary["evaluations"] == len(expected)


def test_two_workers_share_the_work(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", accuracy={"fidelity": "synthetic", "synthetic_delay_s": 0.1})
    expected = reference(tmp_path / "ref")
    # one command with --workers 2
    run = tmp_path / "w2"
    res = subprocess.run([sys.executable, "-m", "crossnas.cli.main", "search", "-c", str(cfg), "-o", str(run),
                          "--workers", "2", "--json", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    trials = load_trials(str(run / "study.journal"))
    check_complete(trials, expected)
    workers = Counter(t.user_attrs["worker"]["id"] for t in trials if t.state.name == "COMPLETE")
    assert len(workers) == 2 and min(workers.values()) > 0
    assert sum(workers.values()) == len(expected) == json.loads(res.stdout)["evaluations"]
    # two independent commands on one storage file
    shared = tmp_path / "shared.journal"
    procs = [cli("-c", str(cfg), "-o", str(tmp_path / f"m{i}"), "--storage", str(shared), "--json") for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    trials = load_trials(str(shared))
    check_complete(trials, expected)
    here = [json.loads(o[0])["evaluated_here"] for o in outs]
    assert sum(here) == len(expected) and min(here) > 0
    best = [json.loads((tmp_path / f"m{i}" / "best.json").read_text())["winners"] for i in range(2)]
    assert best[0] == best[1]


# ---- PostgreSQL -------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")):
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server():
    """initdb + pg_ctl start on 127.0.0.1:<free port> in a temp dir; always stopped."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs Debian's postgresql")
    base = Path(tempfile.mkdtemp(prefix="crossnas-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root and runuser is missing: cannot start postgres as an unprivileged user")
        as_user = [runuser, "-u", "nobody", "--"]
        os.chmod(base, 0o755)
        shutil.chown(base, "nobody")
    data, sock, log = base / "data", base / "sock", base / "log"
    port = _free_port()
    started = False
    try:
        subprocess.run([*as_user, str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        sock.mkdir()
        if as_user:
            shutil.chown(sock, "nobody")
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                        "-o", f"-p {port} -k {sock} -h 127.0.0.1", "start"], check=True, capture_output=True, timeout=120)
        started = True
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE crossnas")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/crossnas"
    finally:
        if started:
            subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_two_workers_one_killed(tmp_path: Path) -> None:
    with postgres_server() as url:
        cfg = write_config(tmp_path / "c.yaml", accuracy={"fidelity": "synthetic", "synthetic_delay_s": 0.05},
                           worker_lease_s=5.0)
        expected = reference(tmp_path / "ref", accuracy={"fidelity": "synthetic", "synthetic_delay_s": 0.0})
        victim = cli("-c", str(cfg), "-o", str(tmp_path / "a"), "--storage", url)
        survivor = cli("-c", str(cfg), "-o", str(tmp_path / "b"), "--storage", url, "--json")
        try:
            wait_for(lambda: n_complete(url) >= 12, victim)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            out, err = survivor.communicate(timeout=300)
        finally:
            for p in (victim, survivor):
                if p.poll() is None:
                    p.kill()
        assert survivor.returncode == 0, err
        trials = load_trials(url)
        check_complete(trials, expected)
        assert json.loads(out)["evaluations"] == len(expected)
        by = Counter(t.user_attrs["worker"]["pid"] for t in trials if t.state.name == "COMPLETE")
        assert by[victim.pid] > 0 and by[survivor.pid] > 0


def test_two_workers_share_pim_aware_work_and_agree_with_one(tmp_path: Path) -> None:
    """The PIM-score phase under several workers: every selected candidate scored once,
    the same PIM-scored set and winners as one worker in process."""
    over = {"accuracy": {"fidelity": "synthetic", "synthetic_pim_aware": True, "synthetic_delay_s": 0.05,
                         "top_k": 2},
            "hardware_genes": {"crossbar.size": [64, 128], "adc.choice": [1, 6, 7, 8], "dac.choice": [1, 2]}}
    cfg = tmp_path / "c.yaml"  # gene order matters (it is the genome's order): keep it
    cfg.write_text(yaml.safe_dump({"search": {**SEARCH, **over}, "hardware": {}}, sort_keys=False))
    ref_cfg = SearchConfig.model_validate({**SEARCH, **over})
    p = SearchProblem(ref_cfg, SpaceConfig(), HardwareConfig(), (1, 8, 8), 10,
                      {"fidelity": "synthetic", "data": __import__("crossnas.config.data", fromlist=["x"]).DataConfig().model_dump(mode="json")})
    ref = run_search(p, lambda: SyntheticAccuracy(), tmp_path / "ref")
    run = tmp_path / "w2"
    res = subprocess.run([sys.executable, "-m", "crossnas.cli.main", "search", "-c", str(cfg), "-o", str(run),
                          "--workers", "2", "--json", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    trials = [t for t in load_trials(str(run / "study.journal")) if t.state.name == "COMPLETE"]
    pim_keys = [t.user_attrs["key"] for t in trials if t.user_attrs["key"].endswith("#pim")]
    assert len(pim_keys) == len(set(pim_keys)) == ref.summary["pim_scores"] > 0  # each scored once
    ref_pim = {t.user_attrs["key"] for t in load_trials(str(tmp_path / "ref" / "study.journal"))
               if t.state.name == "COMPLETE" and t.user_attrs["key"].endswith("#pim")}
    assert set(pim_keys) == ref_pim
    best = json.loads((run / "best.json").read_text())
    assert [(w["key"], w["fitness"]) for w in best["winners"]] == [(w["key"], w["fitness"]) for w in ref.best["winners"]]
