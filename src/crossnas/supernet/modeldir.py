"""The model directory: one trained static network plus what is needed to rebuild it.

Layout (read by ``crossnas evaluate``/``export``)::

    model.json   {"format": "crossnas-model/1", "arch": "<string form>", "space": {...},
                  "input_shape": [C, H, W], "n_classes": N, "data": {...},
                  "hardware": {...} | null, "metrics": {...}}
    weights.pt   state dict of the StaticNet (loaded with weights_only=True)

Both files are written atomically; ``weights.pt`` first, so a ``model.json`` never
points at missing weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import nn

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError, format_validation_error
from crossnas.space.arch import ArchSpec
from crossnas.supernet.static import build_static
from crossnas.utils.io import load_torch, read_json, save_torch, write_json

MODEL_FORMAT = "crossnas-model/1"
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"


@dataclass
class LoadedModel:
    """A model directory, loaded.

    Attributes:
        module: the static network (eval mode, CPU).
        spec, space, input_shape, n_classes: its architecture and shapes.
        data_cfg: the data it was trained on.
        hardware: the hardware it was searched for (``None`` if not recorded).
        metrics: whatever the writer recorded (accuracies as fractions 0..1).
        path: the directory it was read from.
    """

    module: nn.Module
    spec: ArchSpec
    space: SpaceConfig
    input_shape: tuple[int, int, int]
    n_classes: int
    data_cfg: DataConfig
    hardware: HardwareConfig | None
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
    hardware: HardwareConfig | None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Writes ``model.json`` and ``weights.pt`` into ``path`` (created).

    Args:
        path: the model directory.
        module: a static network with the structure :func:`build_static` gives for ``spec``.
        spec, space, input_shape, n_classes: to rebuild it.
        data_cfg: the data config it was trained with.
        hardware: the hardware config (``None`` = not recorded).
        metrics: JSON-able figures (accuracy as a fraction 0..1, ``latency_ms`` ...).

    Returns:
        The directory path.
    """
    d = Path(path)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    save_torch(d / WEIGHTS, state)
    write_json(
        d / MODEL_JSON,
        {
            "format": MODEL_FORMAT,
            "arch": str(spec),
            "space": space.model_dump(mode="json"),
            "input_shape": [int(v) for v in input_shape],
            "n_classes": int(n_classes),
            "data": data_cfg.model_dump(mode="json"),
            "hardware": hardware.model_dump(mode="json") if hardware is not None else None,
            "metrics": dict(metrics or {}),
        },
    )
    return d


def load_model_dir(path: str | Path) -> LoadedModel:
    """Reads a model directory: rebuilds the network with :func:`build_static` and loads
    ``weights.pt`` (``weights_only=True``).

    Raises:
        CrossnasError: missing/corrupt files, unknown format, weights that don't fit.
    """
    d = Path(path)
    if not d.is_dir():
        raise CrossnasError(f"model directory not found: {d}")
    meta = read_json(d / MODEL_JSON, "model file")
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise CrossnasError(f"{d / MODEL_JSON}: not a crossnas model file (expected format {MODEL_FORMAT!r})")
    try:
        space = SpaceConfig.model_validate(meta["space"])
        data_cfg = DataConfig.model_validate(meta["data"])
        hardware = HardwareConfig.model_validate(meta["hardware"]) if meta.get("hardware") is not None else None
        spec = ArchSpec.from_string(str(meta["arch"]))
        shape = tuple(int(v) for v in meta["input_shape"])
        n_classes = int(meta["n_classes"])
        metrics = dict(meta.get("metrics") or {})
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, str(d / MODEL_JSON))) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CrossnasError(f"{d / MODEL_JSON}: missing or bad field ({exc})") from exc
    if len(shape) != 3:
        raise CrossnasError(f"{d / MODEL_JSON}: input_shape must be [C, H, W], got {list(shape)}")
    module = build_static(spec, space, shape, n_classes)  # type: ignore[arg-type]
    state = load_torch(d / WEIGHTS)
    if not isinstance(state, dict):
        raise CrossnasError(f"{d / WEIGHTS}: not a state dict")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CrossnasError(f"{d / WEIGHTS} does not fit arch {spec}: {first}") from exc
    return LoadedModel(module.eval(), spec, space, shape, n_classes, data_cfg, hardware, metrics, d)  # type: ignore[arg-type]
