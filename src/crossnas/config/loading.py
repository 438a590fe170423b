"""Reading config files and ``--set section.key=value`` overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from crossnas.errors import CrossnasError


def load_yaml_or_json(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Reads a YAML or JSON mapping; errors are one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CrossnasError(f"{what} file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CrossnasError(f"{what} file {p} cannot be parsed: {first}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CrossnasError(f"{what} file {p} must hold a mapping (key: value), got {type(data).__name__}")
    return data


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """Parses ``["adc.choice=3", "crossbar.rows=128"]`` into a nested dict.

    Values are read as YAML scalars (``3`` -> int, ``true`` -> bool, ``[1,2]`` -> list).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CrossnasError(f"--set {item!r}: expected section.key=value")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise CrossnasError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = out
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise CrossnasError(f"--set {item!r}: {p} is set both as a value and a section")
            node = nxt
        node[parts[-1]] = value
    return out


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merges ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = apply_overrides(out[k], v)
        else:
            out[k] = v
    return out
