"""The run report: collects a run directory's files into tables and plots, writes
``report/report.md`` and a self-contained ``report/report.html``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError
from crossnas.report import plots
from crossnas.report.reference import PAPER_ROWS
from crossnas.report.render import Document, Figure, Section, Table, to_html, to_markdown
from crossnas.runinfo import search_seconds, supernet_train_seconds
from crossnas.space.arch import ArchSpec
from crossnas.utils.io import read_json, write_text

logger = logging.getLogger(__name__)

_BLOCK_WORDS = {"vgg": "VGG block + 2×2 max pool", "vgg_nopool": "VGG block (no pool)",
                "residual": "residual block (1×1 conv shortcut)", "skip": "skip (identity)"}


def _pct(v: float | None, std: float | None = None) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f} ± {100 * std:.2f}" if std is not None else f"{100 * v:.2f}"


def _xbar(genes: dict[str, Any] | None, hw: dict[str, Any] | None = None) -> Any:
    if genes and "crossbar.size" in genes:
        return genes["crossbar.size"]
    if genes and "crossbar.rows" in genes:
        return genes["crossbar.rows"]
    if hw:
        return hw.get("crossbar", {}).get("rows")
    return None


def collect(run_dir: Path) -> dict[str, Any]:
    """Reads what the report needs from a run directory (missing optional files are skipped)."""
    run_dir = Path(run_dir)
    if not (run_dir / "winners").is_dir() and not (run_dir / "search" / "best.json").exists():
        raise CrossnasError(f"{run_dir} holds no finished search or winner (is it a crossnas run directory?)")
    out: dict[str, Any] = {"run_dir": run_dir}
    s = run_dir / "search"
    out["search"] = read_json(s / "search.json", "search.json") if (s / "search.json").exists() else {}
    out["pareto"] = read_json(s / "pareto.json", "pareto.json") if (s / "pareto.json").exists() else {}
    out["best"] = read_json(s / "best.json", "best.json") if (s / "best.json").exists() else {}
    cands = read_json(s / "candidates.json", "candidates.json") if (s / "candidates.json").exists() else {}
    out["candidates"] = cands.get("candidates", [])
    winners = []
    wdir = run_dir / "winners"
    for d in sorted(wdir.iterdir()) if wdir.is_dir() else []:
        if (d / "model.json").exists() and (d / "evaluation.json").exists():
            winners.append({"label": d.name, "model": read_json(d / "model.json", "model.json"),
                            "eval": read_json(d / "evaluation.json", "evaluation.json")})
    winners.sort(key=lambda w: -(w["model"].get("metrics", {}).get("w_acc") or 0))
    out["winners"] = winners
    out["supernet_s"] = supernet_train_seconds(run_dir / "supernet")
    out["search_s"] = search_seconds(s)
    sm = run_dir / "supernet" / "metrics.json"
    out["supernet_metrics"] = read_json(sm, "supernet metrics") if sm.exists() else None
    return out


def _search_scores(m: dict[str, Any]) -> tuple[str, str]:
    """(supernet score, PIM score ± Monte-Carlo std) of a search entry's metrics, as text."""
    sn = m.get("supernet_accuracy")
    if sn is None and "pim_accuracy_mean" not in m:
        sn = m.get("accuracy")
    pim = _pct(m["pim_accuracy_mean"], m.get("pim_accuracy_std")) if "pim_accuracy_mean" in m else "–"
    return _pct(sn), pim


def paper_table(d: dict[str, Any]) -> Table:
    hours = (d["supernet_s"] + d["search_s"]) / 3600.0
    rows: list[list[Any]] = []
    for w in d["winners"]:
        e = w["eval"]
        wa = w["model"].get("metrics", {}).get("w_acc")
        sn, pim = _search_scores(w["model"].get("metrics", {}).get("search", {}) or {})
        rows.append([f"crossnas (w_acc = {wa:g})" if wa is not None else f"crossnas {w['label']}",
                     _pct(e["pim_accuracy_mean"], e["pim_accuracy_std"]), _pct(e.get("quantized_accuracy")), sn, pim,
                     e["latency_ms"], e["edp_mJms"], e["energy_mJ"], e["area_mm2"], round(hours, 4),
                     f"this run: retrained, {e.get('mc_runs')} simulated chips on the {e.get('split', 'test')} split"])
    front = d["pareto"].get("front", [])
    if front:
        most = max(front, key=lambda f: f["metrics"]["accuracy"])
        cheap = min(front, key=lambda f: f["metrics"].get("edp_mJms", float("inf")))
        for name, f in (("front: most accurate", most), ("front: lowest EDP", cheap)):
            m = f["metrics"]
            sn, pim = _search_scores(m)
            rows.append([name, "–", "–", sn, pim, m.get("latency_ms"), m.get("edp_mJms"), m.get("energy_mJ"),
                         m.get("area_mm2"), round(hours, 4),
                         f"this run: search candidate, inherited weights (accuracy used: {f.get('accuracy_source', f.get('fidelity', '?'))})"])
    for r in PAPER_ROWS:
        rows.append([r["method"], _pct(r["pim_accuracy"]), "–", "–", "–", r["latency_ms"], r["edp_mJms"], None, None,
                     r["search_time_h"], "reported in the paper (CIFAR-10, GPU)"])
    return Table(
        "Results (paper-style table)",
        ["design", "PIM accuracy, retrained (%)", "quantized accuracy, retrained (%)",
         "search: supernet score (%)", "search: PIM score ± MC std (%)", "latency (ms)", "EDP (mJ·ms)",
         "energy (mJ)", "area (mm²)", "search time (h)", "source"],
        rows,
        note="PIM accuracy, retrained: the winner trained from scratch and run on simulated chips (Monte-Carlo mean ± std). "
             "Search scores use the supernet's inherited weights on the validation split: the supernet score is the "
             "fake-quantized digital accuracy, the PIM score the same network on the candidate's own simulated chip. "
             "Our rows are on this run's dataset; the paper's rows are CIFAR-10 and are shown for scale, not as a "
             "like-for-like comparison. Search time = supernet training + search, wall clock.",
    )


def arch_table(w: dict[str, Any]) -> tuple[Table, list[str]]:
    """Per choice layer: block, width, bits, crossbars used (from the cost model's layers);
    with an ``epitome`` column (the wrap m, EPIM) when the winner's space searched epitomes
    or a layer is wrapped."""
    spec = ArchSpec.from_string(w["model"]["arch"])
    space_wraps = (w["model"].get("space") or {}).get("epitome") or [1]
    show_wrap = any(m != 1 for m in space_wraps) or any(layer.wrapped for layer in spec.layers)
    layers = [layer for layer in w["eval"].get("layers", []) if layer.get("type") in ("conv", "fc")]
    convs = [layer for layer in layers if layer["type"] == "conv"]
    fcs = [layer for layer in layers if layer["type"] == "fc"]
    rows: list[list[Any]] = []
    words: list[str] = []
    i = 0
    for n, layer in enumerate(spec.layers):
        if layer.block == "skip":
            rows.append([n, "skip", "–", "–", "–", *(["–"] if show_wrap else []), 0])
            continue
        k = 3 if layer.block == "residual" else 2
        xb = sum(int(c.get("crossbars", 0)) for c in convs[i:i + k])
        i += k
        epi = layer.epitome if layer.epitome_out is None else f"{layer.epitome} (out {layer.epitome_out})"
        rows.append([n, layer.block, layer.width, layer.w_bits, layer.a_bits, *([epi] if show_wrap else []), xb])
        wrap = ""
        if layer.wrapped:
            outs = "" if layer.epitome_out is None else f" (outputs {layer.epitome_out}x)"
            wrap = f", its convs stored as epitomes wrapped {layer.epitome}x{outs}"
        words.append(f"{_BLOCK_WORDS[layer.block]} of width {layer.width} at {layer.w_bits}-bit weights / "
                     f"{layer.a_bits}-bit activations{wrap}")
    for j, f in enumerate(fcs):
        rows.append([f"head fc{j + 1}", "fc", f.get("out_shape", ["?"])[0] if f.get("out_shape") else "–",
                     f.get("w_bits"), f.get("a_bits"), *(["–"] if show_wrap else []), f.get("crossbars", 0)])
    header = ["layer", "block", "width", "w bits", "a bits", *(["epitome m"] if show_wrap else []), "crossbars"]
    table = Table(f"Winner architecture ({w['label']}): {w['model']['arch']}", header, rows)
    return table, words


def _when(t_s: float) -> str:
    for name, unit in (("year", 31536000.0), ("day", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t_s >= unit:
            v = t_s / unit
            return f"{v:.3g} {name}{'s' if name in ('year', 'day') and v != 1 else ''}"
    return f"{t_s:.3g} s"


def time_table(label: str, curve: dict[str, Any]) -> Table:
    """The accuracy-vs-time curve of one winner as a table."""
    comp, unc = curve.get("compensated") or [], curve.get("uncompensated") or []
    rows = []
    for i, t in enumerate(curve.get("times_s", [])):
        rows.append([_when(float(t)), _pct(comp[i]["mean"], comp[i]["std"]) if i < len(comp) else "–",
                     _pct(unc[i]["mean"], unc[i]["std"]) if i < len(unc) else "–"])
    return Table(f"PIM accuracy after programming ({label})",
                 ["time after programming", "with drift compensation (%)", "without (%)"], rows,
                 note=f"{curve.get('mc_runs')} simulated chips per point, the same chips at every time; ADC "
                      "ranges set when the chip is programmed; drift compensation is a per-layer digital gain "
                      "calibrated at read time.")


def hardware_words(hw: dict[str, Any]) -> str:
    try:
        dev, xb, adc, dac, pe, tile = (hw[k] for k in ("device", "crossbar", "adc", "dac", "pe", "tile"))
    except KeyError:
        return "hardware: n/a"
    cell_bits = int(dev["levels"]).bit_length() - 1
    return (f"{dev['type']} cells ({cell_bits} bit/cell, {dev['levels']} levels) in {xb['rows']}×{xb['cols']} crossbars, "
            f"{'positive/negative array pairs' if pe['polarity'] == 2 else 'one array per weight (offset encoding)'}; "
            f"ADC: {adc['bits']}-bit (MNSIM choice {adc.get('choice')}), DAC: {dac['bits']}-bit (choice {dac.get('choice')}); "
            f"{pe['adcs_per_subarray']} ADCs per subarray, {tile['pe_rows'] * tile['pe_cols']} PEs per tile; "
            f"cost model mode: {hw.get('cost_mode', 'mnsim')}.")


def write_report(run_dir: str | Path, *, title: str = "crossnas run report") -> dict[str, Path]:
    """Writes ``report/report.md``, ``report/report.html`` and the PNG plots.

    Returns:
        ``{"md": path, "html": path}``.
    """
    run_dir = Path(run_dir)
    d = collect(run_dir)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    srch = d["search"]
    intro = []
    if srch:
        intro.append(
            f"Search mode: {srch.get('mode')}; {srch.get('evaluations')} candidates evaluated over "
            f"{srch.get('generations')} generations; input {srch.get('input_shape')}, {srch.get('n_classes')} classes; "
            f"supernet training {d['supernet_s']:.0f} s, search {d['search_s']:.0f} s."
        )
    if d["winners"]:
        e = d["winners"][0]["eval"]
        intro.append(
            f"Winner ({d['winners'][0]['label']}): PIM accuracy {_pct(e['pim_accuracy_mean'], e['pim_accuracy_std'])} % "
            f"over {e.get('mc_runs')} Monte-Carlo runs (quantized digital accuracy {_pct(e['quantized_accuracy'])} %), "
            f"latency {e['latency_ms']:.4g} ms, energy {e['energy_mJ']:.4g} mJ, EDP {e['edp_mJms']:.4g} mJ·ms, "
            f"area {e['area_mm2']:.4g} mm² per image."
        )
    sections.append(Section("Summary", intro, [paper_table(d)]))

    figs: list[Figure] = []
    front = [{"accuracy": f["metrics"]["accuracy"], "edp_mJms": f["metrics"]["edp_mJms"],
              "crossbar_size": _xbar(f.get("hardware_genes")),
              "supernet_accuracy": f["metrics"].get("supernet_accuracy"),
              "pim_accuracy_std": f["metrics"].get("pim_accuracy_std")} for f in d["pareto"].get("front", [])
             if "edp_mJms" in f.get("metrics", {})]
    pts = [{"accuracy": c["accuracy"], "edp_mJms": c["edp_mJms"], "crossbar_size": _xbar(c.get("hardware_genes"))}
           for c in d["candidates"] if c.get("accuracy") is not None and c.get("edp_mJms")]
    if pts or front:
        hl = []
        for w in d["best"].get("winners", []):
            m = w.get("metrics", {})
            if "edp_mJms" in m:
                hl.append({"accuracy": m["accuracy"], "edp_mJms": m["edp_mJms"], "label": f"w_acc={w['w_acc']:g}",
                           "supernet_accuracy": m.get("supernet_accuracy"), "pim_accuracy_std": m.get("pim_accuracy_std")})
        figs.append(Figure("Pareto front: search accuracy (the PIM score where simulated, else the supernet score) "
                           "vs EDP, coloured by crossbar size",
                           plots.plot_pareto(pts, front, out / "pareto.png", highlights=hl)))
    if d["winners"]:
        e = d["winners"][0]["eval"]
        if e.get("components"):
            figs.append(Figure("Winner: energy and area by component",
                               plots.plot_breakdown(e["components"], out / "breakdown.png")))
        if e.get("layers"):
            figs.append(Figure("Winner: latency per layer (pipelined; the last layer finishes at the total latency)",
                               plots.plot_layer_latency(e["layers"], out / "layer_latency.png")))
    curves = [{"label": w["label"], **w["eval"]["pim_accuracy_vs_time"]} for w in d["winners"]
              if w["eval"].get("pim_accuracy_vs_time")]
    if curves:
        figs.append(Figure("Winners: PIM accuracy against time after programming (conductance drift), with "
                           "(solid) and without (dashed) global drift compensation",
                           plots.plot_accuracy_vs_time(curves, out / "accuracy_vs_time.png")))
    conv = convergence(d)
    if conv:
        figs.append(Figure("Search convergence: best value per generation",
                           plots.plot_convergence(conv, out / "convergence.png",
                                                  y_label="best fitness" if srch.get("mode") == "paper" else "best accuracy (%)")))
    sections.append(Section("Plots", figures=figs))

    for w in d["winners"]:
        table, words = arch_table(w)
        hw = w["model"].get("hardware", {})
        e = w["eval"]
        paras = ["Network: " + "; ".join(words) + ".", "Hardware: " + hardware_words(hw),
                 f"PIM accuracy runs: {', '.join(f'{100 * r:.2f} %' for r in e.get('pim_accuracy_runs', []))}."]
        tables = [table]
        if e.get("pim_accuracy_vs_time"):
            tables.append(time_table(w["label"], e["pim_accuracy_vs_time"]))
        sections.append(Section(f"Winner {w['label']}", paras, tables))

    doc = Document(title, sections)
    md = out / "report.md"
    html_path = out / "report.html"
    write_text(md, to_markdown(doc, out))
    write_text(html_path, to_html(doc))
    return {"md": md, "html": html_path}


def convergence(d: dict[str, Any]) -> dict[str, list[float]]:
    """Best fitness (paper mode, per w_acc) or best accuracy per generation, cumulative."""
    cands = [c for c in d["candidates"] if c.get("gen") is not None and c.get("accuracy") is not None]
    if not cands:
        return {}
    n_gen = max(int(c["gen"]) for c in cands) + 1
    srch = d["search"]
    if srch.get("mode") == "paper":
        norm = (d.get("best") or {}).get("normalization", {}).get("ranges") or srch.get("normalization", {}).get("ranges", {})
        if "latency_ms" not in norm or "energy_mJ" not in norm:
            return {}
        from crossnas.search.objectives import Evaluation, HardwareCost, Ranges, paper_fitness

        ranges = Ranges({k: (float(a), float(b)) for k, (a, b) in norm.items()})
        out: dict[str, list[float]] = {}
        for wa in srch.get("config", {}).get("w_acc", []):
            def fit(c: dict[str, Any], wa: float = wa) -> float:
                cost = HardwareCost(float(c["latency_ms"]), float(c["energy_mJ"]), 0.0, 0.0, 0.0)
                return paper_fitness(Evaluation("", float(c["accuracy"]), cost), wa, ranges)
            out[f"w_acc={wa:g}"] = _cummax([max((fit(c) for c in cands if c["gen"] == g), default=float("-inf"))
                                            for g in range(n_gen)])
        return out
    return {"best accuracy": _cummax([max((100 * c["accuracy"] for c in cands if c["gen"] == g), default=float("-inf"))
                                      for g in range(n_gen)])}


def _cummax(xs: list[float]) -> list[float]:
    out, best = [], float("-inf")
    for x in xs:
        best = max(best, x)
        out.append(best)
    return out
