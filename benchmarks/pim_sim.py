"""Speed and memory of the PIM accuracy simulator on one conv layer.

Main case (issue 3): a 64->64 3x3 conv, 8-bit weights and activations, CIFAR-sized
32x32 maps; timed at batch 32 (``--batch``; the ratios barely depend on it, and short
runs keep the alternation meaningful on a shared CPU); peak memory of one forward at
batch 128 (``--mem-batch``), each in a fresh subprocess. For each setting (DAC bits, cell bits, crossbar rows, ADC bits)
it times the simulated layer on the general path against the plain fake-quantized
forward, alternating the two, and reports the median ratio (``slowdown``), the
arithmetic floor (layer-sized matmuls: input cycles x cell slices x arrays), their
ratio, and the peak extra resident memory of one simulated forward. The fast path
(ideal hardware: one conv) is timed the same way.

Usage: ``python benchmarks/pim_sim.py [--batch 32] [--mem-batch 128] [--repeats 5] [--threads 1]``.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch

from crossnas.config.hardware import HardwareConfig
from crossnas.pimsim import PimSimSettings, ideal_hardware, simulate_model
from crossnas.quant import QuantConv2d

SETTINGS = [  # (dac_bits, cell_bits, rows, adc_bits)
    (1, 2, 128, 6),
    (1, 1, 256, 6),
    (2, 2, 256, 8),
    (2, 2, 64, 6),
    (1, 2, 32, 4),
]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


class PeakRss:
    """Samples this process's resident memory every millisecond while active."""

    def __enter__(self) -> PeakRss:
        self.base = _rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ratio(
    fn: Callable[[], object], ref: Callable[[], object], repeats: int
) -> tuple[float, float, float, float]:
    """Median over repeats of ``time(fn) / mean(time(ref) just before, just after)``.

    Sandwiching each ``fn`` run between two ``ref`` runs keeps the ratio meaningful when
    other processes share the CPU. Also returns the median times and the peak extra
    resident memory of ``fn``.
    """
    ref()
    fn()  # warm-up
    ratios, t_fn, t_ref, mems = [], [], [], []
    before = _time(ref)
    for _ in range(repeats):
        with PeakRss() as mem:
            b = _time(fn)
        after = _time(ref)
        a = (before + after) / 2
        before = after
        ratios.append(b / a)
        t_fn.append(b)
        t_ref.append(a)
        mems.append(mem.extra_mb)
    return statistics.median(ratios), statistics.median(t_fn), statistics.median(t_ref), max(mems)


def _layer_and_input(batch: int, hw: int, channels: int = 64) -> tuple[QuantConv2d, torch.Tensor]:
    torch.manual_seed(0)
    conv = QuantConv2d(channels, channels, 3, padding=1, w_bits=8, a_bits=8).eval()
    conv.act_clip.fill_(2.0)
    return conv, torch.randn(batch, channels, hw, hw).relu()


def _hardware(setting: tuple[int, int, int, int]) -> HardwareConfig:
    dac, cell, rows, adc = setting
    return HardwareConfig().with_updates(
        dac={"bits": dac},
        device={"levels": 1 << cell},
        crossbar={"rows": rows},
        adc={"bits": adc, "range_mode": "fixed"},
    )


def _mem_child(setting: tuple[int, int, int, int], batch: int, hw: int, channels: int = 64) -> None:
    """One simulated forward in a fresh process; prints its peak extra RSS in MB."""
    conv, x = _layer_and_input(batch, hw, channels)
    if setting[0] == 0:
        sim = simulate_model(conv, ideal_hardware(HardwareConfig()))
    else:
        sim = simulate_model(
            conv, _hardware(setting), settings=PimSimSettings(force_general_path=True)
        )
    with torch.no_grad(), PeakRss() as mem:
        t = _time(lambda: sim(x))
    print(json.dumps({"peak_mem_MB": round(mem.extra_mb, 1), "time_ms": round(t * 1e3, 1)}))


def _peak_mem(
    setting: tuple[int, int, int, int], batch: int, hw: int, threads: int, channels: int = 64
) -> dict[str, float]:
    """Runs :func:`_mem_child` in a subprocess with large allocations mmapped (so RSS
    tracks live memory: glibc would otherwise keep freed blocks resident)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [
        sys.executable,
        __file__,
        "--mem-only",
        ",".join(map(str, setting)),
        "--batch",
        str(batch),
        "--hw",
        str(hw),
        "--threads",
        str(threads),
        "--channels",
        str(channels),
    ]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--mem-batch", type=int, default=128, help="batch of the peak-memory runs (0: skip them)"
    )
    ap.add_argument("--hw", type=int, default=32, help="input map height = width")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument(
        "--large-layer",
        action="store_true",
        help="only: peak memory of the paper's largest layer (128->128 3x3, 32x32) at batch 256, general path",
    )
    ap.add_argument("--mem-only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.mem_only is not None:
        setting = tuple(int(v) for v in args.mem_only.split(","))
        _mem_child(setting, args.batch, args.hw, args.channels)  # type: ignore[arg-type]
        return
    if args.large_layer:
        res = _peak_mem((2, 2, 256, 8), 256, 32, args.threads, channels=128)
        print(
            json.dumps(
                {
                    "large_layer": "128->128 3x3, 32x32, batch 256, DAC 2 b, cell 2 b, 256 rows, ADC 8 b",
                    **res,
                }
            )
        )
        return
    conv, x = _layer_and_input(args.batch, args.hw)

    def plain() -> object:
        with torch.no_grad():
            return conv(x)

    fast = simulate_model(conv, ideal_hardware(HardwareConfig()))
    assert fast.fast

    def run_fast() -> object:
        with torch.no_grad():
            return fast(x)

    fast_ratio, t_fast, t_plain, _ = _ratio(run_fast, plain, args.repeats)
    mem_batch = args.mem_batch or args.batch
    fast_mem = _peak_mem((0, 0, 0, 0), mem_batch, args.hw, args.threads) if args.mem_batch else {}
    print(
        f"plain quantized forward: {t_plain * 1e3:.1f} ms (batch {args.batch}, {args.hw}x{args.hw}, 64->64 3x3)"
    )
    print(
        f"fast path (ideal): {t_fast * 1e3:.1f} ms, slowdown {fast_ratio:.2f}x; at batch {mem_batch}: {fast_mem}"
    )

    rows_out = []
    for setting in SETTINGS:
        dac, cell, rows, adc = setting
        sim = simulate_model(
            conv, _hardware(setting), settings=PimSimSettings(force_general_path=True)
        )
        floor = sim.plan.floor_matmuls

        def run(sim: torch.nn.Module = sim) -> object:
            with torch.no_grad():
                return sim(x)

        ratio, t_sim, _t_ref, _ = _ratio(run, plain, args.repeats)
        mem = _peak_mem(setting, mem_batch, args.hw, args.threads) if args.mem_batch else {}
        rows_out.append(
            {
                "dac_bits": dac,
                "cell_bits": cell,
                "crossbar": rows,
                "adc_bits": adc,
                "slowdown": round(ratio, 2),
                "floor": floor,
                "slowdown_over_floor": round(ratio / floor, 2),
                "time_ms": round(t_sim * 1e3, 1),
                "peak_mem_MB": mem.get("peak_mem_MB"),
            }
        )
        print(
            f"DAC {dac} b, cell {cell} b, {rows} rows, ADC {adc} b: {t_sim * 1e3:.0f} ms, slowdown {ratio:.1f}x, "
            f"floor {floor}, slowdown/floor {ratio / floor:.2f}; at batch {mem_batch}: {mem}"
        )
    print(
        json.dumps(
            {
                "batch": args.batch,
                "mem_batch": mem_batch,
                "threads": args.threads,
                "repeats": args.repeats,
                "plain_ms": round(t_plain * 1e3, 1),
                "fast_path_slowdown": round(fast_ratio, 3),
                "fast_path_peak_mem_MB": fast_mem.get("peak_mem_MB"),
                "settings": rows_out,
            }
        )
    )


if __name__ == "__main__":
    main()
