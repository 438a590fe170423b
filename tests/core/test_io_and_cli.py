"""Atomic writes, checkpoint loading and the CLI error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crossnas.cli.main import main
from crossnas.config.loading import apply_overrides, parse_set_options
from crossnas.errors import CrossnasError
from crossnas.utils.io import (
    atomic_open,
    load_torch,
    read_json,
    save_torch,
    stable_hash,
    write_json,
)


def test_failed_write_leaves_old_file_untouched(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    write_json(p, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(p) as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_truncated_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    p = tmp_path / "c.pt"
    save_torch(p, {"w": torch.arange(1000.0)})
    assert torch.equal(load_torch(p)["w"], torch.arange(1000.0))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CrossnasError, match="corrupt or truncated"):
        load_torch(p)


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(CrossnasError, match="not found"):
        read_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CrossnasError, match="not valid JSON"):
        read_json(bad)


def test_stable_hash_ignores_key_order() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_set_options_parse_nested_and_typed() -> None:
    out = parse_set_options(["adc.choice=3", "crossbar.rows=128", "device.type=SRAM", "tile.x=1.5"])
    assert out == {"adc": {"choice": 3}, "crossbar": {"rows": 128}, "device": {"type": "SRAM"}, "tile": {"x": 1.5}}
    assert apply_overrides({"adc": {"choice": 1, "ideal": False}}, out)["adc"] == {"choice": 3, "ideal": False}
    with pytest.raises(CrossnasError, match="section.key=value"):
        parse_set_options(["adc.choice"])


def test_cli_version_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "crossnas" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
