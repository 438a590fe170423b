"""Report rendering: Markdown tables and a self-contained HTML file."""

from __future__ import annotations

import base64
from pathlib import Path

from crossnas.report.plots import plot_convergence, plot_pareto
from crossnas.report.render import Document, Figure, Section, Table, to_html, to_markdown


def _doc(tmp_path: Path) -> Document:
    png = plot_convergence({"w_acc=0.99": [1.0, 2.0, 2.5]}, tmp_path / "c.png")
    table = Table("T", ["design", "acc"], [["ours", 0.91234], ["paper", "reported in the paper"]])
    return Document("R", [Section("S", ["para | with pipe"], [table], [Figure("conv", png)])])


def test_markdown_has_table_rows_and_relative_images(tmp_path: Path) -> None:
    md = to_markdown(_doc(tmp_path), tmp_path)
    assert "| design | acc |" in md and "| ours | 0.9123 |" in md
    assert "![conv](c.png)" in md


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = to_html(_doc(tmp_path))
    assert "src='data:image/png;base64," in page
    assert "<link" not in page and "http" not in page.split("<body>")[1]
    start = page.index("base64,") + len("base64,")
    data = base64.b64decode(page[start:page.index("'", start)])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "class='ref'" in page  # paper rows are marked


def test_pareto_plot_writes_png(tmp_path: Path) -> None:
    pts = [{"accuracy": 0.5 + i / 100, "edp_mJms": 10.0 ** (-i / 10), "crossbar_size": 64 * (1 + i % 2)} for i in range(30)]
    out = plot_pareto(pts, pts[:5], tmp_path / "p.png", highlights=[{**pts[0], "label": "w"}])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_accuracy_vs_time_plot_and_table(tmp_path: Path) -> None:
    from crossnas.report.build import time_table
    from crossnas.report.plots import plot_accuracy_vs_time

    curve = {"times_s": [60.0, 3600.0, 86400.0, 31536000.0], "mc_runs": 2,
             "compensated": [{"mean": 0.98 - i / 100, "std": 0.01} for i in range(4)],
             "uncompensated": [{"mean": 0.97 - i / 10, "std": 0.02} for i in range(4)]}
    out = plot_accuracy_vs_time([{"label": "w0.99", **curve}], tmp_path / "t.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    table = time_table("w0.99", curve)
    assert [r[0] for r in table.rows] == ["1 min", "1 h", "1 day", "1 year"]
    assert table.rows[-1][1:] == ["95.00 ± 1.00", "67.00 ± 2.00"]
