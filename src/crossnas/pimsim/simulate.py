"""Model-level API: simulate a quantized network on crossbars, Monte-Carlo accuracy."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.pimsim.layers import PimConv2d, PimEpitomeConv2d, PimLayer, PimLinear
from crossnas.pimsim.mapping import LayerStreams, derive_seed
from crossnas.pimsim.settings import CrossbarSpec, PimSimSettings
from crossnas.quant import QuantConv2d, QuantLinear

logger = logging.getLogger(__name__)


def ideal_hardware(hardware: HardwareConfig) -> HardwareConfig:
    """``hardware`` in the ideal limit: ideal ADC, no variation, no programming or read
    noise, no drift (read at ``time_s = 0``), no faults, infinite on/off ratio.

    The infinite on/off ratio is ``device.hrs_ohm = inf``, which the config's validation
    does not accept, so the copy is made without re-validation (note: pydantic's JSON dump
    writes ``inf`` as ``null``; keep the original config for saving).
    """
    device = hardware.device.model_copy(
        update={
            "variation_pct": 0.0,
            "prog_noise_pct": 0.0,
            "read_noise_pct": 0.0,
            "noise_model": "gaussian",
            "time_s": 0.0,
            "stuck_at_hrs": 0.0,
            "stuck_at_lrs": 0.0,
            "hrs_ohm": float("inf"),
        }
    )
    adc = hardware.adc.model_copy(update={"ideal": True})
    return hardware.model_copy(update={"device": device, "adc": adc})


def pim_layers(module: nn.Module) -> Iterator[PimLayer]:
    """The crossbar-simulated layers of a simulated model, in module order."""
    for m in module.modules():
        if isinstance(m, PimLayer):
            yield m


def _make_layer(
    layer: nn.Module, spec: CrossbarSpec, settings: PimSimSettings, seed: int, index: int, name: str,
    datapath: str = "sum",
) -> nn.Module:
    from crossnas.quant.epitome import EpitomeConv2d

    streams = LayerStreams(seed, index)
    if isinstance(layer, EpitomeConv2d):  # only the epitome on the crossbars
        return PimEpitomeConv2d(layer, spec, settings, streams, name, datapath)
    if isinstance(layer, QuantConv2d):
        return PimConv2d(layer, spec, settings, streams, name)
    assert isinstance(layer, QuantLinear)
    return PimLinear(layer, spec, settings, streams, name)


def simulate_model(
    module: nn.Module,
    hardware: HardwareConfig,
    *,
    seed: int = 0,
    settings: PimSimSettings | None = None,
    calibration: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of ``module`` whose quantized layers run on simulated crossbars.

    Every :class:`QuantConv2d` / :class:`QuantLinear` becomes a :class:`PimConv2d` /
    :class:`PimLinear` with devices sampled from ``seed`` (layer ``i`` uses the
    stream ``(seed, i)``, module order). Plain ``nn.Conv2d``/``nn.Linear`` stay digital.
    The copy is in eval mode; ``module`` is not changed.

    Args:
        module: a static quantized network (e.g. ``Supernet.extract``).
        hardware: the accelerator; see :class:`CrossbarSpec` for the fields read.
        seed: Monte-Carlo seed (>= 0) of the non-idealities.
        settings: simulation-only knobs.
        calibration: network inputs ``(B, ...)`` to calibrate "scale" ADC ranges on;
            without it, each layer calibrates on the first input it sees.

    Returns:
        The simulated model.

    Raises:
        CrossnasError: bad simulation settings (one line naming the field).
    """
    settings = settings or PimSimSettings()
    spec = CrossbarSpec.from_hardware(hardware)
    if seed < 0:
        raise CrossnasError(f"seed must be >= 0, got {seed}")
    sim = copy.deepcopy(module).eval()
    quant_types = (QuantConv2d, QuantLinear)
    if isinstance(sim, quant_types):
        sim = _make_layer(sim, spec, settings, seed, 0, "", hardware.epitome.datapath)
    else:
        index = 0
        for parent_name, parent in list(sim.named_modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, quant_types):
                    full = f"{parent_name}.{child_name}" if parent_name else child_name
                    setattr(
                        parent, child_name,
                        _make_layer(child, spec, settings, seed, index, full, hardware.epitome.datapath),
                    )
                    index += 1
                elif isinstance(child, (nn.Conv2d, nn.Linear)) and not isinstance(child, PimLayer):
                    logger.info("%s: plain %s stays digital", child_name, type(child).__name__)
    sim.eval()
    if calibration is not None and any(layer.needs_calibration for layer in pim_layers(sim)):
        with torch.no_grad():
            sim(calibration)
    return sim


@dataclass(frozen=True)
class PimResult:
    """Monte-Carlo PIM accuracy (fractions 0..1).

    Attributes:
        mean: mean accuracy over the runs.
        std: sample standard deviation over the runs (0 for one run).
        runs: accuracy of each run.
        quantized_accuracy: the digital fake-quantized network's accuracy on the same data.
    """

    mean: float
    std: float
    runs: list[float] = field(default_factory=list)
    quantized_accuracy: float = float("nan")


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> int:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            pred = model(x[i : i + batch_size]).argmax(dim=1)
            correct += int((pred == y[i : i + batch_size].to(pred.device)).sum())
    return correct


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    if len(x) == 0:
        raise CrossnasError("no evaluation samples (empty data)")
    return _correct(model, x, y, batch_size) / len(x)


def run_seed(seed: int, run: int) -> int:
    """The seed of Monte-Carlo run ``run`` of an evaluation with ``seed``."""
    return derive_seed(seed, 1_000_000 + run)


def pim_accuracy(
    module: nn.Module,
    hardware: HardwareConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mc_runs: int = 5,
    seed: int = 0,
    batch_size: int = 256,
    settings: PimSimSettings | None = None,
    calibration_x: torch.Tensor | None = None,
) -> PimResult:
    """Accuracy of ``module`` on simulated crossbars, over ``mc_runs`` device samples.

    Hardware without random non-idealities is simulated once and the result
    repeated (every run would be identical).

    Args:
        module: static quantized network (its mode is restored afterwards).
        hardware: the accelerator.
        x: inputs ``(N, ...)``; y: labels ``(N,)``.
        mc_runs: Monte-Carlo runs (>= 1).
        seed: base seed (>= 0); run ``i`` uses :func:`run_seed` ``(seed, i)``.
        batch_size: evaluation batch size.
        settings: simulation-only knobs.
        calibration_x: inputs for "scale" ADC calibration (training images: the CLI,
            the pipeline and the search pass them); default: the first
            ``settings.calibration_samples`` of ``x`` (one batch that both calibrates
            and is scored).

    Returns:
        :class:`PimResult`.
    """
    settings = settings or PimSimSettings()
    if mc_runs < 1:
        raise CrossnasError(f"mc_runs must be >= 1, got {mc_runs}")
    if batch_size < 1:
        raise CrossnasError(f"batch_size must be >= 1, got {batch_size}")
    spec = CrossbarSpec.from_hardware(hardware)
    was_training = module.training
    module.eval()
    try:
        q_acc = _accuracy(module, x, y, batch_size)
    finally:
        module.train(was_training)
    n_cal = settings.calibration_samples
    distinct = 1 if spec.deterministic else mc_runs
    runs: list[float] = []
    for i in range(distinct):
        run = run_seed(seed, i)
        if calibration_x is not None:
            sim = simulate_model(
                module, hardware, seed=run, settings=settings, calibration=calibration_x
            )
            runs.append(_accuracy(sim, x, y, batch_size))
        else:
            # The first n_cal inputs calibrate "scale" ADC ranges in one forward pass (each
            # layer calibrates on its first input), and that pass's predictions count.
            sim = simulate_model(module, hardware, seed=run, settings=settings)
            correct = _correct(sim, x[:n_cal], y[:n_cal], n_cal)
            correct += _correct(sim, x[n_cal:], y[n_cal:], batch_size)
            runs.append(correct / len(x))
        logger.debug("MC run %d/%d: accuracy %.4f", i + 1, distinct, runs[-1])
    if distinct < mc_runs:
        runs = runs * mc_runs
    arr = np.asarray(runs, dtype=np.float64)
    if (
        len(set(runs)) == 1
    ):  # identical runs: the exact value (a float sum / n can differ by an ulp)
        mean, std = float(runs[0]), 0.0
    else:
        mean, std = float(arr.mean()), float(arr.std(ddof=1))
    return PimResult(mean=mean, std=std, runs=[float(r) for r in runs], quantized_accuracy=q_acc)
