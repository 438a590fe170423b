"""Model directories: one static network with everything needed to use it again.

Layout of a model directory::

    model.json   {"format": "crossnas-model/1", "arch": "<string form>", "space": {...},
                  "input_shape": [C, H, W], "n_classes": N, "data": {...data config...},
                  "hardware": {...HardwareConfig...}, "metrics": {...}}
    weights.pt   state dict of the static module (``build_static`` structure)

``crossnas evaluate``, ``crossnas export`` and the pipeline read this format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError, format_validation_error
from crossnas.space.arch import ArchSpec
from crossnas.utils.io import load_torch, read_json, save_torch, write_json

MODEL_FORMAT = "crossnas-model/1"
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"


@dataclass
class LoadedModel:
    """A model directory, loaded: the static module (eval mode) and its description."""

    module: nn.Module
    spec: ArchSpec
    space: SpaceConfig
    input_shape: tuple[int, int, int]
    n_classes: int
    data_cfg: DataConfig
    hardware: HardwareConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_model_dir(
    path: str | Path,
    module: nn.Module,
    *,
    spec: ArchSpec,
    space: SpaceConfig,
    input_shape: tuple[int, int, int],
    n_classes: int,
    data_cfg: DataConfig,
    hardware: HardwareConfig,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Writes ``model.json`` and ``weights.pt`` (each atomically; weights first)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_torch(out / WEIGHTS, {k: v.detach().cpu() for k, v in module.state_dict().items()})
    write_json(out / MODEL_JSON, {
        "format": MODEL_FORMAT,
        "arch": str(spec),
        "space": space.model_dump(mode="json"),
        "input_shape": [int(v) for v in input_shape],
        "n_classes": int(n_classes),
        "data": data_cfg.model_dump(mode="json"),
        "hardware": hardware.model_dump(mode="json"),
        "metrics": dict(metrics or {}),
    })
    return out


def load_model_dir(path: str | Path) -> LoadedModel:
    """Reads a model directory and rebuilds its static module.

    Raises:
        CrossnasError: missing or malformed ``model.json``, corrupt or mismatching weights.
    """
    from pydantic import ValidationError

    from crossnas.supernet.static import build_static

    d = Path(path)
    if not d.is_dir():
        raise CrossnasError(f"model directory not found: {d}")
    meta = read_json(d / MODEL_JSON, "model file")
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise CrossnasError(f"{d / MODEL_JSON} is not a crossnas model file (format {MODEL_FORMAT})")
    try:
        space = SpaceConfig.model_validate(meta["space"])
        data_cfg = DataConfig.model_validate(meta["data"])
        hardware = HardwareConfig.model_validate(meta["hardware"])
        spec = ArchSpec.from_string(str(meta["arch"]))
        input_shape = tuple(int(v) for v in meta["input_shape"])
        n_classes = int(meta["n_classes"])
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, str(d / MODEL_JSON))) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CrossnasError(f"{d / MODEL_JSON} is incomplete or malformed ({type(exc).__name__}: {exc})") from exc
    if len(input_shape) != 3:
        raise CrossnasError(f"{d / MODEL_JSON}: input_shape must be [C, H, W]")
    module = build_static(spec, space, input_shape, n_classes)  # type: ignore[arg-type]
    state = load_torch(d / WEIGHTS)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CrossnasError(f"{d / WEIGHTS} does not match the architecture in {MODEL_JSON} ({type(exc).__name__})") from exc
    return LoadedModel(module.eval(), spec, space, input_shape, n_classes, data_cfg, hardware,  # type: ignore[arg-type]
                       dict(meta.get("metrics") or {}), d)
