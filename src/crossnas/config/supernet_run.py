"""The config file of ``crossnas supernet train``: data, space, training and seed.

The sections are the reusable models :class:`DataConfig`, :class:`SpaceConfig` and
:class:`TrainConfig`; a full pipeline config embeds the same sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crossnas.config.data import DataConfig
from crossnas.config.loading import apply_overrides, load_yaml_or_json
from crossnas.config.space import SpaceConfig
from crossnas.config.train import TrainConfig


class SupernetRunConfig(BaseModel):
    """Everything a supernet training run needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataConfig = DataConfig()
    space: SpaceConfig = SpaceConfig()
    train: TrainConfig = TrainConfig()
    seed: int = Field(0, ge=0)
    """Seed of weight init, path sampling, shuffling, augmentation and dropout."""

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> SupernetRunConfig:
        """Reads a YAML/JSON file, applies ``--set`` style overrides, validates.

        Raises:
            CrossnasError: unreadable file. ``pydantic.ValidationError``: bad values.
        """
        data = load_yaml_or_json(path, "supernet config")
        if overrides:
            data = apply_overrides(data, overrides)
        return cls.model_validate(data)
