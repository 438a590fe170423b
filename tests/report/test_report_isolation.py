"""The report package leaves global state alone and does not depend on the pipeline."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import crossnas.report

_PROBE = r"""
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")  # the calling program's choice, which the report must not change
before = dict.__getitem__(matplotlib.rcParams, "backend")
import crossnas.report, crossnas.report.build, crossnas.report.plots, crossnas.report.render
from crossnas.report import plots
from crossnas.report.build import collect
out = Path(sys.argv[1])
pts = [{"accuracy": 0.5 + i / 100, "edp_mJms": 10.0 ** (-i / 10), "crossbar_size": 64 * (1 + i % 2)} for i in range(12)]
pngs = [
    plots.plot_pareto(pts, pts[:4], out / "p.png", highlights=[{**pts[0], "label": "w"}]),
    plots.plot_breakdown({"energy_mJ": {"ADC": 1.0, "DAC": 2.0}, "area_mm2": {"ADC": 3.0}}, out / "b.png"),
    plots.plot_layer_latency([{"name": "conv0", "latency_ms": 0.1}, {"name": "fc0", "latency_ms": 0.2}], out / "l.png"),
    plots.plot_convergence({"w_acc=0.99": [1.0, 2.0]}, out / "c.png"),
]
run = out / "run"
(run / "search").mkdir(parents=True)
(run / "supernet").mkdir()
(run / "search" / "best.json").write_text("{}")
(run / "search" / "search.json").write_text(json.dumps({"timings": {"total_wall_s": 7.25}}))
(run / "supernet" / "metrics.json").write_text(json.dumps({"history": [{"epoch_time_s": 2.0}, {"epoch_time_s": 3.5}]}))
d = collect(run)
print(json.dumps({
    "pipeline": sorted(m for m in sys.modules if m == "crossnas.pipeline" or m.startswith("crossnas.pipeline.")),
    "pyplot": "matplotlib.pyplot" in sys.modules,
    "backend_before": str(before), "backend_after": str(dict.__getitem__(matplotlib.rcParams, "backend")),
    "pngs": [p.read_bytes()[:4].hex() for p in pngs],
    "seconds": [d["supernet_s"], d["search_s"]],
}))
"""


def test_report_imports_and_runs_without_pipeline_pyplot_or_backend_change(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300,
                         check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["pipeline"] == []
    assert got["pyplot"] is False
    assert got["backend_after"] == got["backend_before"] == "svg"
    assert got["pngs"] == ["89504e47"] * 4
    assert got["seconds"] == [5.5, 7.25]  # the run facts come from crossnas.runinfo


def test_no_report_module_imports_the_pipeline() -> None:
    """Statically, including imports inside functions: report/ sits below pipeline/."""
    offenders = []
    for path in sorted(Path(crossnas.report.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "crossnas.pipeline" or n.startswith("crossnas.pipeline.") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "crossnas" and any(
                    a.name == "pipeline" for a in node.names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
