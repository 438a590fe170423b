"""PNG plots for the report (matplotlib; data in, file out).

Each plot is its own :class:`matplotlib.figure.Figure` drawn by a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`: no pyplot, so nothing global
(the backend, pyplot's figure list) is set or changed for the calling program.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from crossnas.utils.io import write_with

_DPI = 130


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure with its own Agg canvas (not registered with pyplot)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    write_with(path, lambda fh: fh.write(buf.getvalue()))
    return Path(path)


def plot_pareto(
    points: Sequence[Mapping[str, Any]],
    front: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    x_key: str = "edp_mJms",
    x_label: str = "EDP (mJ·ms, log scale)",
    color_key: str = "crossbar_size",
    highlights: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Accuracy vs a cost: every candidate faint, the front bold, coloured by crossbar size.

    Args:
        points: all evaluated candidates (``accuracy`` 0..1, ``x_key``, ``color_key``).
        front: the non-dominated ones.
        path: PNG to write.
        highlights: winners to mark and label (``label`` key).

    Points with a PIM score (``supernet_accuracy`` and ``pim_accuracy_std`` keys) are drawn
    at their PIM score with the Monte-Carlo std as an error bar, and a thin grey line
    down (or up) from their supernet score, so the hardware's effect is visible.
    """
    fig = _figure((7.5, 4.8))
    ax = fig.subplots()
    groups = sorted({p.get(color_key) for p in [*points, *front]}, key=lambda v: (v is None, v))
    cmap = matplotlib.colormaps["viridis"].resampled(max(len(groups), 1))
    for i, g in enumerate(groups):
        name = f"{g}×{g}" if g else "n/a"
        pts = [p for p in points if p.get(color_key) == g]
        fr = [p for p in front if p.get(color_key) == g]
        if pts:
            ax.scatter([p[x_key] for p in pts], [100 * p["accuracy"] for p in pts], s=10, alpha=0.25,
                       color=cmap(i), linewidths=0, label=None if fr else f"{name} (not on front)")
        if fr:
            ax.scatter([p[x_key] for p in fr], [100 * p["accuracy"] for p in fr], s=38, alpha=0.95,
                       color=cmap(i), edgecolors="black", linewidths=0.6, label=name)
    shown = [p for p in [*front, *highlights] if p.get("supernet_accuracy") is not None]
    for p in shown:  # the supernet score the PIM score replaced
        ax.plot([p[x_key], p[x_key]], [100 * p["supernet_accuracy"], 100 * p["accuracy"]], color="grey",
                linewidth=0.8, alpha=0.8, zorder=1)
        ax.scatter([p[x_key]], [100 * p["supernet_accuracy"]], marker="_", s=40, color="grey", zorder=1)
        if p.get("pim_accuracy_std"):
            ax.errorbar([p[x_key]], [100 * p["accuracy"]], yerr=[100 * p["pim_accuracy_std"]], color="black",
                        linewidth=0.8, capsize=2, zorder=4)
    if shown:
        ax.plot([], [], color="grey", linewidth=0.8, label="from supernet score to PIM score")
    if front:
        fr_sorted = sorted(front, key=lambda p: p[x_key])
        ax.plot([p[x_key] for p in fr_sorted], [100 * p["accuracy"] for p in fr_sorted], color="black",
                linewidth=0.8, alpha=0.6, drawstyle="steps-post")
    merged: dict[tuple[float, float], list[str]] = {}
    for h in highlights:  # winners at the same point share one marker and one label
        merged.setdefault((h[x_key], 100 * h["accuracy"]), []).append(str(h.get("label", "")))
    for k, ((x, y), labels) in enumerate(merged.items()):
        ax.scatter([x], [y], marker="*", s=180, color="crimson", edgecolors="black", linewidths=0.6, zorder=5)
        ax.annotate(", ".join(labels), (x, y), textcoords="offset points", xytext=(8, -12 - 11 * k),
                    fontsize=8, color="crimson")
    if points or front:
        vals = [p[x_key] for p in [*points, *front] if p[x_key] > 0]
        if vals and max(vals) / min(vals) > 20:
            ax.set_xscale("log")
        else:
            x_label = x_label.replace(", log scale", "")
    ax.set_xlabel(x_label)
    ax.set_ylabel("search accuracy (%): PIM score where simulated")
    ax.set_title("Candidates (faint) and Pareto front (bold), by crossbar size")
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(title="crossbar", fontsize=8, title_fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_breakdown(components: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Energy and area of one design by component, as two horizontal bar charts.

    Args:
        components: ``{"energy_mJ": {name: v}, "area_mm2": {name: v}}``.
    """
    panels = [(k, lab) for k, lab in (("energy_mJ", "energy (mJ per image)"), ("area_mm2", "area (mm²)"))
              if components.get(k)]
    fig = _figure((10, 3.8))
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=False):
        items = sorted(((n, v) for n, v in components[key].items() if n != "total"), key=lambda t: t[1])
        total = sum(v for _, v in items) or 1.0
        names = [n for n, _ in items]
        vals = [v for _, v in items]
        bars = ax.barh(names, vals, color="#4c72b0")
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {100 * v / total:.1f}%", va="center",
                    fontsize=8)
        ax.set_xlabel(label)
        ax.set_xlim(0, max(vals or [1]) * 1.25)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("Winner: breakdown by component")
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_latency(layers: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Per-layer latency bars of one design (``name``, ``latency_ms``)."""
    names = [str(layer.get("name", i)) for i, layer in enumerate(layers)]
    vals = [float(layer.get("latency_ms", 0.0)) for layer in layers]
    fig = _figure((max(6.0, 0.38 * len(names) + 2), 4.0))
    ax = fig.subplots()
    ax.bar(range(len(vals)), vals, color="#55a868")
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("layer")
    ax.set_title("Winner: latency per layer")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_convergence(series: Mapping[str, Sequence[float]], path: str | Path, *, y_label: str = "best fitness") -> Path:
    """Best value per generation, one line per series (e.g. per w_acc)."""
    fig = _figure((6.5, 3.8))
    ax = fig.subplots()
    for name, ys in series.items():
        ax.plot(range(len(ys)), list(ys), marker="o", markersize=3, label=str(name))
    ax.set_xlabel("generation")
    ax.set_ylabel(y_label)
    ax.set_title("Search convergence")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


_TIME_TICKS = ((60.0, "1 min"), (3600.0, "1 h"), (86400.0, "1 day"), (604800.0, "1 week"),
               (2592000.0, "30 days"), (31536000.0, "1 year"), (315360000.0, "10 years"))


def plot_accuracy_vs_time(curves: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """PIM accuracy against time after programming (log time axis), one colour per design,
    solid with drift compensation and dashed without, Monte-Carlo std as error bars.

    Args:
        curves: ``{"label", "times_s": [...], "compensated": [{"mean", "std"}],
            "uncompensated": [...]}`` per design (accuracies 0..1).
    """
    fig = _figure((7.0, 4.2))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    times: list[float] = []
    for i, c in enumerate(curves):
        ts = [max(float(t), 1.0) for t in c["times_s"]]
        times += ts
        for key, style, word in (("compensated", "-", "with"), ("uncompensated", "--", "without")):
            pts = c.get(key) or []
            if not pts:
                continue
            ax.errorbar(ts, [100 * p["mean"] for p in pts], yerr=[100 * (p.get("std") or 0.0) for p in pts],
                        color=cmap(i % 10), linestyle=style, marker="o", markersize=3, capsize=2,
                        label=f"{c['label']}, {word} drift compensation")
    ax.set_xscale("log")
    if times:
        lo, hi = min(times), max(times)
        ticks = [(t, n) for t, n in _TIME_TICKS if lo / 1.5 <= t <= hi * 1.5]
        if ticks:
            ax.set_xticks([t for t, _ in ticks])
            ax.set_xticklabels([n for _, n in ticks])
    ax.set_xlabel("time after programming (log scale)")
    ax.set_ylabel("PIM accuracy (%)")
    ax.set_title("Accuracy on the drifting chip")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
