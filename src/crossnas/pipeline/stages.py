"""The five stages of ``crossnas run`` (each returns facts recorded in pipeline.json)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossnas.errors import CrossnasError
from crossnas.metrics import HW_METRICS
from crossnas.runinfo import search_seconds, supernet_train_seconds
from crossnas.space.arch import ArchSpec
from crossnas.utils.io import read_json, write_json

if TYPE_CHECKING:
    from crossnas.pipeline.run import PipelineContext

logger = logging.getLogger(__name__)

CALIBRATION_IMAGES = 256
"""Training images used to calibrate the ADC full scale ("scale" range rule) in evaluation."""


def winner_label(w_acc: float) -> str:
    """Folder name of the winner for one ``w_acc`` (e.g. ``w0.99``)."""
    return f"w{w_acc:g}"


# ---- supernet -------------------------------------------------------------------------
def stage_supernet(ctx: PipelineContext) -> dict[str, Any]:
    from crossnas.train import train_supernet

    res = train_supernet(ctx.cfg.supernet_config(), ctx.paths.supernet, resume=True, progress=ctx.progress,
                         data=ctx.data)
    if not res.finished:  # pragma: no cover - only with stop_after
        raise CrossnasError("supernet training did not finish")
    return {"train_seconds": supernet_train_seconds(ctx.paths.supernet)}


# ---- search -----------------------------------------------------------------------------
def stage_search(ctx: PipelineContext) -> dict[str, Any]:
    from crossnas.search.loading import load_search
    from crossnas.search.runner import run_search

    loaded = load_search(ctx.paths.config, ctx.paths.search, supernet_dir=ctx.paths.supernet)
    update = None
    prog = None
    if ctx.progress:
        from crossnas.search.progress import progress_display

        prog, update = progress_display(True)
        prog.start()
    try:
        result = run_search(loaded.problem, loaded.evaluator, ctx.paths.search, progress=update,
                            extra_info=loaded.info)
    finally:
        if prog is not None:
            prog.stop()
    if not result.best.get("winners"):
        raise CrossnasError("the search found no feasible candidate; relax search.constraints")
    write_json(ctx.paths.search / "candidates.json", export_candidates(ctx.paths.search, ctx.cfg.search.study_name))
    return {"evaluations": result.summary["evaluations"], "search_seconds": result.summary["wall_s"]}


def export_candidates(search_dir: Path, study_name: str) -> dict[str, Any]:
    """Every completed candidate of the run's journal study as plain JSON (for reports).

    ``accuracy`` is the search's accuracy (the PIM score where one was simulated, else the
    supernet score, as ``accuracy_source`` says); ``supernet_accuracy`` and, when
    simulated, ``pim_accuracy_mean``/``pim_accuracy_std`` are given apart.
    """
    import optuna

    from crossnas.search.objectives import (
        Evaluation,
        HardwareCost,
        PimScore,
        accuracy_fields,
        with_pim,
    )
    from crossnas.search.store import PIM_SUFFIX, TrialStore, open_storage, resolve_storage_url

    storage = open_storage(resolve_storage_url(None, search_dir))
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pim: dict[str, PimScore] = {}
    for t in trials:
        key = str(t.user_attrs.get("key", ""))
        if key.endswith(PIM_SUFFIX) and t.values:
            pim.setdefault(key[: -len(PIM_SUFFIX)], TrialStore.pim_score_of(t))
    rows = []
    seen: set[str] = set()
    for t in trials:
        ua = t.user_attrs
        key = str(ua.get("key", ""))
        if key.endswith(PIM_SUFFIX) or key in seen or not t.values:
            continue
        seen.add(key)
        cost = {k: float((ua.get("cost") or {}).get(k, float("nan"))) for k in HW_METRICS}
        ev = Evaluation(key, float(t.values[0]), HardwareCost(**cost), str(ua.get("fidelity", "")))
        ev = with_pim({key: ev}, pim)[key]
        rows.append({"trial": t.number, "gen": ua.get("gen"), "arch": ua.get("arch"), "hardware_genes": ua.get("hw"),
                     "accuracy": ev.accuracy, **accuracy_fields(ev), **cost})
    return {"format": "crossnas-candidates/2", "candidates": rows}


# ---- retrain -----------------------------------------------------------------------------
def _winners(ctx: PipelineContext) -> list[dict[str, Any]]:
    best = read_json(ctx.paths.search / "best.json", "search result")
    winners = list(best.get("winners", []))
    if not winners:
        raise CrossnasError(f"{ctx.paths.search / 'best.json'} lists no winner; rerun with --force search")
    if ctx.cfg.retrain.winners == "first":
        winners = winners[:1]
    return winners


def stage_retrain(ctx: PipelineContext) -> dict[str, Any]:
    from crossnas.pipeline.retrain import retrain_spec
    from crossnas.pipeline.run import winner_hardware
    from crossnas.supernet.modeldir import save_model_dir

    cfg, data = ctx.cfg, ctx.data
    trained: dict[str, Any] = {}
    labels = []
    for i, w in enumerate(_winners(ctx)):
        label = winner_label(float(w["w_acc"]))
        labels.append(label)
        spec = ArchSpec.from_string(w["arch"])
        if w["arch"] not in trained:  # winners of several w_acc may share a network
            trained[w["arch"]] = retrain_spec(cfg, spec, data, ctx.paths.retrain / label, progress=ctx.progress)
        module, metrics = trained[w["arch"]]
        metrics = {"w_acc": w["w_acc"], **metrics, "search": {"fitness": w.get("fitness"), **w.get("metrics", {})}}
        save_model_dir(ctx.paths.winners / label, module, spec=spec, space=cfg.space,
                       input_shape=tuple(data.input_shape), n_classes=data.n_classes, data_cfg=cfg.data,
                       hardware=winner_hardware(w), metrics=metrics)
        if i == 0:
            _replace_dir(ctx.paths.winners / label, ctx.paths.winner)
    return {"winners": labels}


def _replace_dir(src: Path, dest: Path) -> None:
    """Copies ``src`` to ``dest`` via a temporary folder and a rename (no half-copied dir)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old)
    else:
        tmp.rename(dest)


# ---- evaluate ----------------------------------------------------------------------------
def evaluation_hardware(ev: Any, hardware: Any) -> Any:
    """``hardware`` with the ``evaluate`` section ``ev``'s simulation overrides (device, ADC)."""
    updates = {}
    if ev.device:
        updates["device"] = dict(ev.device)
    if ev.adc:
        updates["adc"] = dict(ev.adc)
    return hardware.with_updates(**updates) if updates else hardware


def evaluate_model_dir(ctx: PipelineContext, model_dir: Path) -> dict[str, Any]:
    """PIM accuracy (Monte-Carlo) and hardware cost of one model directory."""
    from crossnas.hw import cost_network
    from crossnas.pimsim import pim_accuracy
    from crossnas.space import arch_to_network_dict
    from crossnas.supernet.modeldir import load_model_dir

    ev = ctx.cfg.evaluate
    loaded = load_model_dir(model_dir)
    data = ctx.data
    x, y = (data.test_x, data.test_y) if ev.split == "test" else (data.val_x, data.val_y)
    hw = evaluation_hardware(ev, loaded.hardware)
    calibration_x = data.train_x[:CALIBRATION_IMAGES]
    res = pim_accuracy(loaded.module, hw, x, y, mc_runs=ev.mc_runs, seed=ev.seed, batch_size=ev.batch_size,
                       calibration_x=calibration_x)
    net = arch_to_network_dict(loaded.spec, loaded.space, loaded.input_shape, loaded.n_classes)
    cost = cost_network(net, loaded.hardware)
    out = {
        "arch": str(loaded.spec),
        "split": ev.split,
        "n_images": int(len(y)),
        "quantized_accuracy": res.quantized_accuracy,
        "pim_accuracy_mean": res.mean,
        "pim_accuracy_std": res.std,
        "pim_accuracy_runs": list(res.runs),
        "mc_runs": ev.mc_runs,
        "seed": ev.seed,
        "simulated_hardware": hw.model_dump(mode="json"),
        **cost,
    }
    if ev.drift_times_s and device_drifts(hw):
        out["pim_accuracy_vs_time"] = accuracy_vs_time(
            loaded.module, hw, x, y, ev.drift_times_s, mc_runs=ev.drift_mc_runs, seed=ev.seed,
            batch_size=ev.batch_size, calibration_x=calibration_x)
    write_json(model_dir / "evaluation.json", out)
    return out


def device_drifts(hardware: Any) -> bool:
    """Whether the simulated cells drift (``noise_model: pcm`` or a drift exponent)."""
    dev = hardware.device
    return dev.noise_model == "pcm" or dev.drift_nu > 0 or dev.drift_nu_std > 0


def accuracy_vs_time(module: Any, hardware: Any, x: Any, y: Any, times_s: Any, *, mc_runs: int, seed: int,
                     batch_size: int, calibration_x: Any) -> dict[str, Any]:
    """PIM accuracy at each time after programming, with and without drift compensation.

    The same chips (seeds) at every time: the programming noise and drift exponents are
    drawn once per chip, only the time they have drifted for changes.

    Returns:
        ``{"times_s": [...], "mc_runs": n, "compensated": [{"mean", "std"}...],
        "uncompensated": [...]}`` (fractions 0..1).
    """
    from crossnas.pimsim import pim_accuracy

    out: dict[str, Any] = {"times_s": [float(t) for t in times_s], "mc_runs": mc_runs}
    for key, comp in (("compensated", True), ("uncompensated", False)):
        points = []
        for t in times_s:
            hw_t = hardware.with_updates(device={"time_s": float(t), "drift_compensation": comp})
            r = pim_accuracy(module, hw_t, x, y, mc_runs=mc_runs, seed=seed, batch_size=batch_size,
                             calibration_x=calibration_x)
            points.append({"mean": r.mean, "std": r.std})
        out[key] = points
    return out


def stage_evaluate(ctx: PipelineContext) -> dict[str, Any]:
    labels = sorted(p.name for p in ctx.paths.winners.iterdir() if (p / "model.json").exists())
    if not labels:
        raise CrossnasError(f"no winner model in {ctx.paths.winners}; rerun with --force retrain")
    first = None
    for w in _winners(ctx):
        label = winner_label(float(w["w_acc"]))
        if label not in labels:
            continue
        out = evaluate_model_dir(ctx, ctx.paths.winners / label)
        logger.info("%s: quantized %.2f %%, PIM %.2f ± %.2f %%", label, 100 * out["quantized_accuracy"],
                    100 * out["pim_accuracy_mean"], 100 * out["pim_accuracy_std"])
        if first is None:
            first = label
    if first is None:
        raise CrossnasError("no evaluated winner")
    _replace_dir(ctx.paths.winners / first, ctx.paths.winner)
    return {"evaluated": labels}


# ---- report ------------------------------------------------------------------------------
def stage_report(ctx: PipelineContext) -> dict[str, Any]:
    from crossnas.report.build import write_report

    paths = write_report(ctx.paths.root, title=ctx.cfg.report.title)
    summary = run_summary(ctx.paths.root)
    write_json(ctx.paths.summary, summary)
    return {"report": str(paths["md"].relative_to(ctx.paths.root))}


def run_summary(root: Path) -> dict[str, Any]:
    """The figures ``crossnas run --json`` prints (from the files of a finished run)."""
    from crossnas.pipeline.run import RunPaths

    paths = RunPaths(root)
    ev = read_json(paths.winner / "evaluation.json", "winner evaluation")
    model = read_json(paths.winner / "model.json", "winner model")
    search_h = (supernet_train_seconds(paths.supernet) + search_seconds(paths.search)) / 3600.0
    winners = []
    for d in sorted(paths.winners.iterdir()) if paths.winners.exists() else []:
        if (d / "evaluation.json").exists():
            e = read_json(d / "evaluation.json", "evaluation")
            m = read_json(d / "model.json", "model")
            winners.append({"label": d.name, "w_acc": m.get("metrics", {}).get("w_acc"), "arch": e["arch"],
                            **{k: e[k] for k in _FIGURES}, "crossbars": e.get("crossbars"), "dir": str(d)})
    return {
        **{k: ev[k] for k in _FIGURES},
        "crossbars": ev.get("crossbars"),  # the winner's total (the cost report's "crossbars")
        "search_time_h": search_h,
        "winner_dir": str(paths.winner),
        "arch": ev["arch"],
        "w_acc": model.get("metrics", {}).get("w_acc"),
        "search_accuracy": _search_accuracy(model.get("metrics", {}).get("search", {}) or {}),
        "hardware": _hardware_brief(model.get("hardware", {})),
        "winners": winners,
        "report_md": str(paths.report / "report.md"),
        "report_html": str(paths.report / "report.html"),
    }


def _search_accuracy(m: dict[str, Any]) -> dict[str, Any]:
    """What the search saw of the winner (inherited weights, validation split)."""
    out: dict[str, Any] = {"accuracy_source": "pim" if "pim_accuracy_mean" in m else "supernet"}
    for k in ("supernet_accuracy", "pim_accuracy_mean", "pim_accuracy_std"):
        if k in m:
            out[k] = m[k]
    if "supernet_accuracy" not in m and "accuracy" in m:
        out["supernet_accuracy"] = m["accuracy"]
    return out


_FIGURES = ("pim_accuracy_mean", "pim_accuracy_std", "quantized_accuracy", *HW_METRICS)


def _hardware_brief(hw: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"crossbar_size": hw["crossbar"]["rows"], "adc_choice": hw["adc"].get("choice"),
                "adc_bits": hw["adc"]["bits"], "dac_choice": hw["dac"].get("choice"), "dac_bits": hw["dac"]["bits"],
                "cell_bits": int(hw["device"]["levels"]).bit_length() - 1}
    except (KeyError, TypeError):
        return {}
