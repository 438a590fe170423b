"""Optuna's process-wide verbosity is set by the CLI's top level, not by library code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from crossnas.cli.main import main


@pytest.fixture
def optuna_verbosity():  # noqa: ANN201
    old = optuna.logging.get_verbosity()
    yield
    optuna.logging.set_verbosity(old)


@pytest.mark.parametrize(("argv", "level"), [([], optuna.logging.WARNING), (["-v"], optuna.logging.INFO)])
def test_optuna_commands_set_its_verbosity(tmp_path: Path, optuna_verbosity: None, argv: list[str],
                                           level: int) -> None:
    for command in ("search", "run", "compare"):
        optuna.logging.set_verbosity(optuna.logging.DEBUG)
        main([*argv, command, "-c", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o")])  # fails early
        assert optuna.logging.get_verbosity() == level, command


def test_other_commands_neither_import_nor_configure_optuna(tmp_path: Path) -> None:
    probe = ("import json, sys; from crossnas.cli.main import main; code = main(['hw', 'resnet18', '--json']); "
             "print(json.dumps({'code': code, 'optuna': 'optuna' in sys.modules}))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"code": 0, "optuna": False}


def test_opening_the_search_storage_leaves_optuna_verbosity_alone(tmp_path: Path, optuna_verbosity: None) -> None:
    from crossnas.search.store import open_storage

    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    open_storage(f"journal:{tmp_path / 'study.journal'}")
    assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
