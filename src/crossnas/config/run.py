"""The whole-pipeline config of ``crossnas run``: every stage's section in one file.

Sections: ``seed``, ``data``, ``space``, ``train`` (supernet), ``hardware`` (base
accelerator; fields not searched), ``search``, ``retrain`` (winners from scratch),
``evaluate`` (PIM Monte-Carlo + cost), ``report``. Each section is the same model the
stage's own command reads, so a run config also works with ``crossnas supernet train``
and ``crossnas search``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.loading import apply_overrides, load_yaml_or_json
from crossnas.config.search import SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.config.supernet_run import SupernetRunConfig
from crossnas.config.train import TrainConfig
from crossnas.errors import CrossnasError, format_validation_error


class RetrainConfig(TrainConfig):
    """Retraining of the winner(s) from scratch, quantization-aware at their bits.

    All :class:`TrainConfig` fields (``weight_noise`` > 0 = noise-injection training), plus:
    """

    winners: Literal["all", "first"] = "all"
    """``all``: one model per requested ``w_acc``; ``first``: only the first ``w_acc``'s."""


class EvaluateConfig(BaseModel):
    """PIM accuracy (Monte-Carlo over device non-idealities) and hardware cost of the winners."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mc_runs: int = Field(5, ge=1, le=10_000)
    seed: int = Field(0, ge=0)
    split: Literal["test", "val"] = "test"
    batch_size: int = Field(256, ge=1)
    device: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the winner's ``hardware.device`` section for the simulation only, e.g.
    ``{variation_pct: 5, stuck_at_hrs: 0.01}`` (the search never sees them)."""
    adc: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the winner's ``hardware.adc`` section for the simulation, e.g. ``{range_mode: fixed}``."""
    drift_times_s: tuple[float, ...] = (60.0, 3600.0, 86400.0, 2592000.0, 31536000.0)
    """Times after programming (s) of the accuracy-vs-time curve (1 min, 1 h, 1 day, 30 days,
    1 year), computed only when the simulated device drifts (``noise_model: pcm`` or
    ``drift_nu > 0``), with and without drift compensation; ``[]`` = never."""
    drift_mc_runs: int = Field(2, ge=1, le=1000)
    """Monte-Carlo chips per point of the accuracy-vs-time curve."""

    @field_validator("drift_times_s")
    @classmethod
    def _times(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for t in v:
            if not 0 <= t <= 1e10:
                raise ValueError(f"drift_times_s: times must be in 0..1e10 s, got {t}")
        return tuple(sorted(set(v)))


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "crossnas run report"


class RunConfig(BaseModel):
    """Everything ``crossnas run`` needs (defaults: the built-in digits run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0)
    data: DataConfig = DataConfig()
    space: SpaceConfig = SpaceConfig()
    train: TrainConfig = TrainConfig()
    hardware: HardwareConfig = HardwareConfig()
    search: SearchConfig = SearchConfig()
    retrain: RetrainConfig = RetrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()

    def supernet_config(self) -> SupernetRunConfig:
        """The ``crossnas supernet train`` view of this config."""
        return SupernetRunConfig(data=self.data, space=self.space, train=self.train, seed=self.seed)

    def section_dump(self, *names: str) -> dict[str, Any]:
        full = self.model_dump(mode="json")
        return {n: full[n] for n in names}


def builtin_config_path(name: str = "digits") -> Path:
    """Path of a config shipped inside the package (``crossnas/configs/NAME.yaml``)."""
    return Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"


def load_run_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Reads a run config (``None`` = the built-in digits config) with ``--set`` overrides.

    Raises:
        CrossnasError: unreadable file or invalid values (one line naming the field).
    """
    from pydantic import ValidationError

    src = Path(path) if path is not None else builtin_config_path("digits")
    data = load_yaml_or_json(src, "run config")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise CrossnasError(format_validation_error(exc, str(src))) from exc
