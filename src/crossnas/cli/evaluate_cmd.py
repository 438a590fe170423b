"""``crossnas evaluate``: digital and PIM accuracy, and hardware cost, of a saved model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from crossnas.errors import CrossnasError
from crossnas.metrics import HW_METRICS

COST_KEYS = HW_METRICS

_TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def parse_times(text: str) -> list[float]:
    """``"60,1h,1d,1y"`` -> seconds after programming (units s, min, h, d, w, y; none = s).

    Raises:
        CrossnasError: a value that is not a non-negative time (one line).
    """
    out: list[float] = []
    for raw in text.split(","):
        item = raw.strip()
        unit = next((u for u in sorted(_TIME_UNITS, key=len, reverse=True) if item.endswith(u)), "")
        number = item[: len(item) - len(unit)] if unit else item
        try:
            value = float(number) * _TIME_UNITS.get(unit, 1.0)
        except ValueError:
            value = float("nan")
        if not (value >= 0 and value <= 1e10):
            raise CrossnasError(
                f"--times: {item!r} is not a time after programming; give seconds or a number with "
                f"a unit ({', '.join(_TIME_UNITS)}), comma-separated, e.g. 60,1h,1d,1y"
            )
        out.append(value)
    return out


def format_time(t_s: float) -> str:
    """A readable time after programming (``3600 -> '1 h'``)."""
    for name, unit in (("y", 31536000.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t_s >= unit:
            return f"{t_s / unit:.3g} {name}"
    return f"{t_s:.3g} s"


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
    from crossnas.devices import retype

    def merge(data: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        dev = over.get("device") if isinstance(over, dict) else None
        if isinstance(dev, dict) and "type" in dev and isinstance(data.get("device"), dict):
            # a new cell type: its preset refills the fields the old type's preset had set
            data = {**data, "device": retype(data["device"], str(dev["type"]))}
        return apply_overrides(data, over)

    data = base.model_dump() if base is not None else {}
    if hardware_file is not None:
        data = merge(data, load_yaml_or_json(hardware_file, what="hardware"))
    data = merge(data, parse_set_options(sets))
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
    times_s: list[float] | None = None,
) -> dict[str, Any]:
    """Everything ``crossnas evaluate`` reports, as a JSON-able dict (fractions 0..1).

    ``ideal`` changes the accuracy simulation only (ideal ADC, no variation, noise, drift
    or faults, infinite on/off ratio); the cost is that of the configured hardware. "scale"
    ADC ranges are calibrated on training images (the pipeline's evaluate stage's
    :data:`~crossnas.pipeline.stages.CALIBRATION_IMAGES`), never on the scored ones.
    ``times_s``: also the PIM accuracy at each of these times after programming
    (``pim_accuracy_vs_time``; ``device.drift_compensation`` as configured).
    """
    from crossnas.data import load_data
    from crossnas.hw import cost_network
    from crossnas.pimsim import CrossbarSpec, ideal_hardware, pim_accuracy
    from crossnas.pipeline.stages import CALIBRATION_IMAGES
    from crossnas.space.mnsim import arch_to_network_dict

    try:
        from crossnas.supernet.modeldir import load_model_dir
    except ImportError as exc:  # the model-directory module ships with the supernet
        raise CrossnasError(f"cannot read model directories: {exc}") from exc

    if mc_runs < 1:
        raise CrossnasError(f"--mc must be >= 1, got {mc_runs}")
    if seed < 0:
        raise CrossnasError(f"--seed must be >= 0, got {seed}")
    if times_s and ideal:
        raise CrossnasError("--times: the ideal simulation (--ideal) has no drift; drop one of them")
    loaded = load_model_dir(model_dir)
    hw = resolve_hardware(loaded.hardware, hardware_file, sets)
    sim_hw = ideal_hardware(hw) if ideal else hw
    CrossbarSpec.from_hardware(sim_hw)  # bad simulation settings fail before loading data
    data = load_data(loaded.data_cfg)
    x, y = data.test_x, data.test_y
    if limit is not None:
        x, y = x[:limit], y[:limit]
    calibration_x = data.train_x[:CALIBRATION_IMAGES]
    res = pim_accuracy(
        loaded.module, sim_hw, x, y, mc_runs=mc_runs, seed=seed, batch_size=batch_size,
        calibration_x=calibration_x,
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
        "time_s": float(sim_hw.device.time_s),
    }
    if times_s:
        curve = []
        for t in times_s:
            at = pim_accuracy(
                loaded.module, hw.with_updates(device={"time_s": t}), x, y, mc_runs=mc_runs,
                seed=seed, batch_size=batch_size, calibration_x=calibration_x,
            )
            curve.append({"time_s": t, "pim_accuracy_mean": at.mean, "pim_accuracy_std": at.std,
                          "pim_accuracy_runs": at.runs})
        out["drift_compensation"] = bool(hw.device.drift_compensation)
        out["pim_accuracy_vs_time"] = curve
    out.update({k: float(cost[k]) for k in COST_KEYS})
    return out


def _render(r: dict[str, Any]) -> None:
    mode = "ideal hardware" if r["ideal"] else f"{r['mc_runs']} Monte-Carlo runs, seed {r['seed']}"
    typer.echo(f"model {r['model']}: {r['arch']} ({r['n_test']} test samples)")
    typer.echo(f"quantized (digital) accuracy: {100 * r['quantized_accuracy']:.2f}%")
    at = f" at {format_time(r['time_s'])} after programming" if r.get("time_s") else ""
    typer.echo(
        f"PIM accuracy{at}: {100 * r['pim_accuracy_mean']:.2f}% ± {100 * r['pim_accuracy_std']:.2f}% ({mode})"
    )
    if r.get("pim_accuracy_vs_time"):
        comp = "with" if r.get("drift_compensation") else "without"
        typer.echo(f"PIM accuracy after programming ({comp} drift compensation):")
        for p in r["pim_accuracy_vs_time"]:
            typer.echo(
                f"  {format_time(p['time_s']):>8}: {100 * p['pim_accuracy_mean']:.2f}% ± "
                f"{100 * p['pim_accuracy_std']:.2f}%"
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
    False, "--ideal", help="Ideal ADC, no variation/noise/drift/faults, infinite on/off ratio."
)
_TIMES = typer.Option(
    None,
    "--times",
    help="Also score at these times after programming (drift), e.g. 60,1h,1d,1y "
    "(units s, min, h, d, w, y; device.drift_compensation as configured).",
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
        times: str | None = _TIMES,
        as_json: bool = _JSON,
    ) -> None:
        """Quantized and PIM accuracy (Monte-Carlo mean ± std) and the hardware cost of a saved model."""
        times_s = parse_times(times) if times is not None else None
        result = evaluate_model_dir(
            model_dir,
            hardware_file=hardware,
            sets=set_,
            mc_runs=mc,
            seed=seed,
            ideal=ideal,
            batch_size=batch_size,
            limit=limit,
            times_s=times_s,
        )
        if as_json:
            typer.echo(json.dumps(result))
        else:
            _render(result)
