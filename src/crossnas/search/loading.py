"""From a config file and a run directory to a :class:`SearchProblem` and its evaluator.

The config file holds a ``search:`` section and a ``hardware:`` section; it may be the
whole pipeline config, so the supernet's sections (``data``, ``space``, ``train``,
``seed``) and other commands' sections are accepted. The network space, the data and
the input shape come from the trained supernet in the run directory (its ``run.json``,
written by ``crossnas supernet train --out RUN_DIR``); a ``space:`` section that differs
from the supernet's is an error. With ``search.accuracy.fidelity: synthetic`` no
supernet is needed: ``space`` and ``data`` come from the file (defaults otherwise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossnas.config.data import DATASET_SHAPES  # input shape and classes (synthetic fidelity)
from crossnas.config.hardware import HardwareConfig
from crossnas.config.loading import apply_overrides, load_yaml_or_json
from crossnas.config.search import AccuracyConfig, SearchConfig
from crossnas.config.space import SpaceConfig
from crossnas.errors import CrossnasError
from crossnas.search.evaluators import (
    Evaluator,
    PimAccuracy,
    PimAwareAccuracy,
    PimSimScorer,
    SupernetAccuracy,
    SyntheticAccuracy,
)
from crossnas.search.runner import SearchProblem

logger = logging.getLogger(__name__)

OWN_SECTIONS = ("search", "hardware", "space", "data")
OTHER_SECTIONS = ("train", "seed", "supernet", "retrain", "evaluate", "pimsim", "report", "export", "pipeline",
                  "name", "run", "device", "output")
"""Sections of the full pipeline config that belong to other commands (accepted, ignored)."""


@dataclass(frozen=True)
class EvaluatorSpec:
    """Picklable recipe of the accuracy evaluator (built once per worker process).

    Args:
        accuracy: the ``search.accuracy`` section.
        supernet_dir: run directory of the trained supernet (``None`` for synthetic).
        device: torch device for scoring.
        threads: torch CPU threads wanted in each worker process (``None``: leave as is);
            read by the process entry points (:func:`crossnas.search.runner.run_search`'s
            spawned workers, the CLI), never set from here.
    """

    accuracy: AccuracyConfig
    supernet_dir: str | None = None
    device: str = "cpu"
    threads: int | None = None

    def __call__(self) -> Evaluator:
        acc = self.accuracy
        if acc.fidelity == "synthetic":
            return SyntheticAccuracy(seed=acc.pim_seed, delay_s=acc.synthetic_delay_s)
        from crossnas.data import load_data
        from crossnas.supernet import SubnetScorer
        from crossnas.train import load_supernet

        if self.supernet_dir is None:
            raise CrossnasError(f"search.accuracy.fidelity {acc.fidelity!r} needs a trained supernet")
        run = load_supernet(self.supernet_dir, device=self.device)
        data = load_data(run.config.data)
        kwargs: dict[str, Any] = {"device": self.device, "channels_last": run.config.train.channels_last}
        if acc.bn_batches is not None:
            kwargs["bn_batches"] = acc.bn_batches
        if acc.batch_size is not None:
            kwargs["batch_size"] = acc.batch_size
        if acc.fidelity == "supernet":
            if acc.val_subset is not None:
                data = dataclasses.replace(data, val_x=data.val_x[:acc.val_subset], val_y=data.val_y[:acc.val_subset])
            return SupernetAccuracy(SubnetScorer(run.net, data, **kwargs))
        n_pim = acc.val_images if acc.fidelity == "pim_aware" or acc.val_subset is None else acc.val_subset
        sim = PimSimScorer(None, data.val_x[:n_pim], data.val_y[:n_pim],
                           calibration_x=data.train_x[:acc.calibration_images], mc_runs=acc.mc_runs,
                           seed=acc.pim_seed, batch_size=acc.batch_size or 256, device=acc.device, adc=acc.adc,
                           screen=acc.screen)
        if acc.fidelity == "pim":
            sim.module_for = SubnetScorer(run.net, data, **kwargs).extract
            return PimAccuracy(sim)
        if acc.val_subset is not None:
            data = dataclasses.replace(data, val_x=data.val_x[:acc.val_subset], val_y=data.val_y[:acc.val_subset])
        scorer = SubnetScorer(run.net, data, **kwargs)
        sim.module_for = scorer.extract
        return PimAwareAccuracy(scorer, sim)


@dataclass(frozen=True)
class LoadedSearch:
    """A search ready to run."""

    problem: SearchProblem
    evaluator: EvaluatorSpec
    supernet_dir: str | None
    info: dict[str, Any]


def _validate(model: Any, data: dict[str, Any], section: str, source: str | Path) -> Any:
    """Validates one section; errors name ``section.field`` (one line)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data.get(section) or {})
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join([section, *(str(p) for p in err.get("loc", ()))])
            msg = "unknown key (not allowed here)" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
            msg = msg.removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
        raise CrossnasError(f"{source}: " + "; ".join(parts)) from exc


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_search_file(path: str | Path, overrides: dict[str, Any] | None = None,
                     mode: str | None = None) -> dict[str, Any]:
    """Reads the config file, applies overrides and ``--mode``; checks the top-level sections."""
    data = load_yaml_or_json(path, "search config")
    if overrides:
        data = apply_overrides(data, overrides)
    unknown = [k for k in data if k not in OWN_SECTIONS + OTHER_SECTIONS]
    if unknown:
        raise CrossnasError(
            f"{path}: unknown section(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(OWN_SECTIONS + OTHER_SECTIONS)}"
        )
    if mode is not None:
        data = apply_overrides(data, {"search": {"mode": mode}})
    return data


def _inherit_evaluation_chip(search: SearchConfig, data: dict[str, Any], source: str | Path) -> SearchConfig:
    """PIM scores simulate the chip the winners are judged on: ``search.accuracy.device``/``adc``
    left unset take the ``evaluate`` section's overrides of a pipeline config."""
    acc = search.accuracy
    ev = data.get("evaluate") or {}
    if not isinstance(ev, dict):
        return search
    updates = {k: ev[k] for k in ("device", "adc") if getattr(acc, k) is None and ev.get(k)}
    if not updates:
        return search
    merged = {"accuracy": {**acc.model_dump(), **updates}}
    new_acc = _validate(AccuracyConfig, merged, "accuracy", source)
    return search.model_copy(update={"accuracy": new_acc})


def load_search(config_path: str | Path, run_dir: str | Path, *, supernet_dir: str | Path | None = None,
                overrides: dict[str, Any] | None = None, mode: str | None = None,
                device: str = "cpu") -> LoadedSearch:
    """Builds the problem and evaluator recipe of ``crossnas search``.

    Raises:
        CrossnasError: bad file, missing/mismatching supernet.
        pydantic.ValidationError: bad values (turned into one line by the CLI).
    """
    data = read_search_file(config_path, overrides, mode)
    search = _validate(SearchConfig, data, "search", config_path)
    search = _inherit_evaluation_chip(search, data, config_path)
    hardware = _validate(HardwareConfig, data, "hardware", config_path)
    file_space = _validate(SpaceConfig, data, "space", config_path) if data.get("space") is not None else None
    info: dict[str, Any] = {"config_file": str(config_path)}
    if search.accuracy.fidelity == "synthetic":
        from crossnas.config.data import DataConfig

        data_cfg = _validate(DataConfig, data, "data", config_path)
        input_shape, n_classes = DATASET_SHAPES[data_cfg.dataset]
        space = file_space or SpaceConfig()
        problem = SearchProblem(search, space, hardware, input_shape, n_classes,
                                {"fidelity": "synthetic", "data": data_cfg.model_dump(mode="json")})
        return LoadedSearch(problem, EvaluatorSpec(search.accuracy), None, info)

    from crossnas.train import load_supernet
    from crossnas.train.loop import CHECKPOINT, FINAL_WEIGHTS

    sdir = Path(supernet_dir) if supernet_dir is not None else Path(run_dir)
    if not (sdir / "run.json").is_file():
        raise CrossnasError(
            f"no trained supernet in {sdir} (run.json missing): run `crossnas supernet train --config C --out {sdir}` "
            "first, pass --supernet DIR, or set search.accuracy.fidelity: synthetic"
        )
    run = load_supernet(sdir)  # validates run.json and that the weights fit its config
    if file_space is not None and file_space != run.config.space:
        diff = [k for k in SpaceConfig.model_fields if getattr(file_space, k) != getattr(run.config.space, k)]
        raise CrossnasError(
            f"space in {config_path} does not match the supernet in {sdir} (differs in: {', '.join(diff)}); "
            "search the space the supernet was trained on"
        )
    weights = sdir / (FINAL_WEIGHTS if (sdir / FINAL_WEIGHTS).exists() else CHECKPOINT)
    identity = {"fidelity": search.accuracy.fidelity, "supernet_weights": weights.name,
                "supernet_sha256": _file_hash(weights), "data": run.config.data.model_dump(mode="json")}
    problem = SearchProblem(search, run.config.space, hardware, tuple(run.input_shape), int(run.n_classes),  # type: ignore[arg-type]
                            identity)
    info.update({"supernet_dir": str(sdir), "supernet_finished": run.finished, "supernet_epochs": run.epochs_done})
    return LoadedSearch(problem, EvaluatorSpec(search.accuracy, str(sdir), device), str(sdir), info)
