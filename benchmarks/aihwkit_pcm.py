"""External check of the PCM noise and drift model against IBM aihwkit (issue 13).

One analog linear layer (``--k`` inputs, ``--n`` outputs), one PCM cell per weight sign
(polarity 2, 16 levels: 5-bit weights whose magnitude fits one cell), ideal converters
(8-bit inputs in one DAC cycle, ideal ADC). The same integer weights (every output row
reaches +-15, so aihwkit's global scaling and crossnas's per-row steps map them onto the
same conductances) and the same inputs go through

* crossnas: ``device.type: PCM`` (G_max 25 uS, G_min 0.25 uS), ``time_s = T``;
* aihwkit 1.1.0: ``TorchInferenceRPUConfig`` with perfect forward I/O, ``PCMLikeNoiseModel``
  on a ``SinglePairConductanceConverter(g_max=25, g_min=0.25)``, ``program_analog_weights``
  then ``drift_analog_weights(T - t0)`` (aihwkit counts inference time from ``t0 = 20 s``:
  its ``t = t_inference + t0`` is crossnas's ``time_s``),

with global drift compensation and without. Figure: the RMS relative output error
``||y - y_ideal|| / ||y_ideal||`` over a batch of inputs, mean over ``--chips`` independent
chips, and the ratio crossnas / aihwkit (goal: within 25 %).

aihwkit is not a crossnas dependency (its wheel pulls build tools and torchvision). Install
it next to the project's torch, without its dependencies (scipy comes with crossnas's test
extra)::

    .venv/bin/pip install --no-deps --target /tmp/aihwkit_site aihwkit==1.1.0
    PYTHONPATH=/tmp/aihwkit_site .venv/bin/python benchmarks/aihwkit_pcm.py

Usage: ``python benchmarks/aihwkit_pcm.py [--k 256] [--n 128] [--batch 256] [--chips 20]``.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from crossnas.config.hardware import HardwareConfig
from crossnas.pimsim import simulate_model
from crossnas.quant import QuantLinear

TIMES_S = (60.0, 86_400.0, 31_536_000.0)
T0_S = 20.0
W_MAX = 15  # 5-bit weights: magnitudes 0..15 on one 16-level cell


def _problem(k: int, n: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights ``(n, k)`` with every row reaching +-15, and 8-bit inputs ``(batch, k)``."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 6.0
    w = w.round().clamp(-W_MAX, W_MAX)
    top = torch.randint(0, k, (n,), generator=g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    w[torch.arange(n), top] = sign * W_MAX
    x = torch.randn(batch, k, generator=g).relu()
    x = (x / x.max() * 255).round() / 255  # x_int / 255 exactly: 8-bit inputs, clip 1
    return w, x


def _crossnas_errors(w: torch.Tensor, x: torch.Tensor, t: float, comp: bool, chips: int) -> list[float]:
    k = w.shape[1]
    layer = QuantLinear(k, w.shape[0], bias=False, w_bits=5, a_bits=8)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.act_clip.fill_(1.0)
    layer.eval().requires_grad_(False)
    ideal = x @ w.t()
    hw = HardwareConfig().with_updates(
        device={"type": "PCM", "levels": 16, "time_s": t, "drift_compensation": comp},
        crossbar={"rows": max(256, k), "cols": 256},
        dac={"choice": 6},  # 8-bit DAC: one input cycle
        adc={"ideal": True},
    )
    out = []
    for chip in range(chips):
        sim = simulate_model(layer, hw, seed=chip)
        y = sim(x)
        out.append(float((y - ideal).norm() / ideal.norm()))
    return out


def _aihwkit_errors(w: torch.Tensor, x: torch.Tensor, t: float, comp: bool, chips: int) -> list[float]:
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    ideal = x @ w.t()
    out = []
    for chip in range(chips):
        torch.manual_seed(10_000 + chip)  # aihwkit draws from the global generator
        rpu = TorchInferenceRPUConfig()
        rpu.forward.is_perfect = True
        rpu.mapping.max_input_size = 0
        rpu.mapping.max_output_size = 0
        rpu.noise_model = PCMLikeNoiseModel(
            g_converter=SinglePairConductanceConverter(g_max=25.0, g_min=0.25)
        )
        rpu.drift_compensation = GlobalDriftCompensation() if comp else None
        layer = AnalogLinear(w.shape[1], w.shape[0], bias=False, rpu_config=rpu)
        layer.set_weights(w)
        layer.eval()
        with torch.no_grad():
            layer.program_analog_weights()
            layer.drift_analog_weights(t - T0_S)
            y = layer(x)
        out.append(float((y - ideal).norm() / ideal.norm()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chips", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import aihwkit
    except ImportError as exc:
        print(f"error: aihwkit is not importable ({exc}); see the module docstring", file=sys.stderr)
        return 2
    w, x = _problem(args.k, args.n, args.batch, args.seed)
    rows = []
    t_start = time.perf_counter()
    for comp in (True, False):
        for t in TIMES_S:
            ours = _crossnas_errors(w, x, t, comp, args.chips)
            theirs = _aihwkit_errors(w, x, t, comp, args.chips)
            row = {
                "time_s": t,
                "drift_compensation": comp,
                "crossnas_rms_rel_error": statistics.mean(ours),
                "crossnas_chip_std": statistics.stdev(ours),
                "aihwkit_rms_rel_error": statistics.mean(theirs),
                "aihwkit_chip_std": statistics.stdev(theirs),
            }
            row["ratio"] = row["crossnas_rms_rel_error"] / row["aihwkit_rms_rel_error"]
            rows.append(row)
            print(
                f"t = {t:>10.0f} s, compensation {'on ' if comp else 'off'}: crossnas "
                f"{row['crossnas_rms_rel_error']:.4f}, aihwkit {row['aihwkit_rms_rel_error']:.4f}, "
                f"ratio {row['ratio']:.3f}",
                file=sys.stderr,
            )
    summary = {
        "benchmark": "aihwkit_pcm",
        "aihwkit_version": getattr(aihwkit, "__version__", "?"),
        "torch_version": torch.__version__,
        "k": args.k,
        "n": args.n,
        "batch": args.batch,
        "chips": args.chips,
        "max_ratio_deviation": max(abs(r["ratio"] - 1) for r in rows),
        "within_25_percent": all(abs(r["ratio"] - 1) <= 0.25 for r in rows),
        "wall_s": time.perf_counter() - t_start,
        "rows": rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
