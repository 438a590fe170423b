"""``crossnas evaluate``: digital and PIM accuracy, and hardware cost, of a saved model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from crossnas.errors import CrossnasError
from crossnas.metrics import HW_METRICS

COST_KEYS = HW_METRICS


def resolve_hardware(base: Any, hardware_file: Path | None, sets: list[str] | None) -> Any:
    """The model's hardware config, merged with a hardware file, then ``--set`` overrides.

    Args:
        base: the model directory's :class:`HardwareConfig`.
        hardware_file: YAML/JSON mapping merged over it (a full file replaces it).
        sets: ``section.key=value`` overrides applied last.

    Returns:
        The validated :class:`HardwareConfig` (pydantic errors propagate to the CLI).
    """
    from crossnas.config.hardware import HardwareConfig
    from crossnas.config.loading import apply_overrides, load_yaml_or_json, parse_set_options

    data = base.model_dump() if base is not None else {}
    if hardware_file is not None:
        data = apply_overrides(data, load_yaml_or_json(hardware_file, what="hardware"))
    data = apply_overrides(data, parse_set_options(sets))
    return HardwareConfig.model_validate(data)


def evaluate_model_dir(
    model_dir: Path,
    *,
    hardware_file: Path | None = None,
    sets: list[str] | None = None,
    mc_runs: int = 5,
    seed: int = 0,
    ideal: bool = False,
    batch_size: int = 256,
    limit: int | None = None,
) -> dict[str, Any]:
    """Everything ``crossnas evaluate`` reports, as a JSON-able dict (fractions 0..1).

    ``ideal`` changes the accuracy simulation only (ideal ADC, no variation or faults,
    infinite on/off ratio); the cost is that of the configured hardware.
    """
    from crossnas.data import load_data
    from crossnas.hw import cost_network
    from crossnas.pimsim import CrossbarSpec, ideal_hardware, pim_accuracy
    from crossnas.space.mnsim import arch_to_network_dict

    try:
        from crossnas.supernet.modeldir import load_model_dir
    except ImportError as exc:  # the model-directory module ships with the supernet
        raise CrossnasError(f"cannot read model directories: {exc}") from exc

    if mc_runs < 1:
        raise CrossnasError(f"--mc must be >= 1, got {mc_runs}")
    if seed < 0:
        raise CrossnasError(f"--seed must be >= 0, got {seed}")
    loaded = load_model_dir(model_dir)
    hw = resolve_hardware(loaded.hardware, hardware_file, sets)
    sim_hw = ideal_hardware(hw) if ideal else hw
    CrossbarSpec.from_hardware(sim_hw)  # bad simulation settings fail before loading data
    data = load_data(loaded.data_cfg)
    x, y = data.test_x, data.test_y
    if limit is not None:
        x, y = x[:limit], y[:limit]
    res = pim_accuracy(
        loaded.module, sim_hw, x, y, mc_runs=mc_runs, seed=seed, batch_size=batch_size
    )
    network = arch_to_network_dict(
        loaded.spec, loaded.space, loaded.input_shape, loaded.n_classes
    )
    cost = cost_network(network, hw)
    out: dict[str, Any] = {
        "model": str(model_dir),
        "arch": str(loaded.spec),
        "n_test": int(len(x)),
        "mc_runs": mc_runs,
        "seed": seed,
        "ideal": ideal,
        "quantized_accuracy": res.quantized_accuracy,
        "pim_accuracy_mean": res.mean,
        "pim_accuracy_std": res.std,
        "pim_accuracy_runs": res.runs,
    }
    out.update({k: float(cost[k]) for k in COST_KEYS})
    return out


def _render(r: dict[str, Any]) -> None:
    mode = "ideal hardware" if r["ideal"] else f"{r['mc_runs']} Monte-Carlo runs, seed {r['seed']}"
    typer.echo(f"model {r['model']}: {r['arch']} ({r['n_test']} test samples)")
    typer.echo(f"quantized (digital) accuracy: {100 * r['quantized_accuracy']:.2f}%")
    typer.echo(
        f"PIM accuracy: {100 * r['pim_accuracy_mean']:.2f}% ± {100 * r['pim_accuracy_std']:.2f}% ({mode})"
    )
    typer.echo(
        f"latency {r['latency_ms']:.4g} ms, energy {r['energy_mJ']:.4g} mJ, EDP {r['edp_mJms']:.4g} mJ·ms, "
        f"area {r['area_mm2']:.4g} mm², power {r['power_W']:.4g} W"
    )


_MODEL_DIR = typer.Argument(..., help="Model directory (model.json + weights.pt).")
_HARDWARE = typer.Option(
    None, "--hardware", help="Hardware config (YAML/JSON) merged over the model's."
)
_SET = typer.Option(None, "--set", help="Override a hardware field, e.g. --set adc.bits=6.")
_MC = typer.Option(5, "--mc", help="Monte-Carlo runs of the device non-idealities.")
_SEED = typer.Option(0, "--seed", help="Seed of the non-idealities.")
_IDEAL = typer.Option(
    False, "--ideal", help="Ideal ADC, no variation/faults, infinite on/off ratio."
)
_BATCH = typer.Option(256, "--batch-size", min=1, help="Evaluation batch size.")
_LIMIT = typer.Option(None, "--limit", min=1, help="Evaluate on the first N test samples only.")
_JSON = typer.Option(False, "--json", help="Print one JSON object.")


def register(app: typer.Typer) -> None:
    """Adds ``crossnas evaluate``."""

    @app.command("evaluate")
    def evaluate(
        model_dir: Path = _MODEL_DIR,
        hardware: Path | None = _HARDWARE,
        set_: list[str] | None = _SET,
        mc: int = _MC,
        seed: int = _SEED,
        ideal: bool = _IDEAL,
        batch_size: int = _BATCH,
        limit: int | None = _LIMIT,
        as_json: bool = _JSON,
    ) -> None:
        """Quantized and PIM accuracy (Monte-Carlo mean ± std) and the hardware cost of a saved model."""
        result = evaluate_model_dir(
            model_dir,
            hardware_file=hardware,
            sets=set_,
            mc_runs=mc,
            seed=seed,
            ideal=ideal,
            batch_size=batch_size,
            limit=limit,
        )
        if as_json:
            typer.echo(json.dumps(result))
        else:
            _render(result)
