"""Speed of the PIM cost model: random CrossNAS-space networks under random hardware.

Prints figures and, as its last line, one JSON object with ``per_network_ms`` (median
time to cost one network alone, ``cost_networks([net], [hw])``),
``per_population50_ms`` (median time to cost a population of 50 in one call),
``per_network_in_population_ms`` (the latter / 50), ``cli_batch_per_network_ms``
(``crossnas hw --batch FILE --json``, parsing and JSON output included: the time difference
of a 10,000-line and a 100-line batch per extra line; both load the compiled kernel, and the
large batch dwarfs the ±0.3 s the interpreter's start-up varies here), ``cli_batch_serial_per_network_ms``
(the same in one process, ``CROSSNAS_WORKERS=1``), ``per_population50_from_dicts_ms``
(a population of 50 given as MNSIM-style dicts, as the search passes them: parsing
included) and, unless ``--no-first-call``, first-call times measured in fresh
processes: ``first_call_cli_s`` (import + one network, the CLI case: the compiled kernel
is not loaded for one-off calls), ``first_call_kernel_cached_s`` (import + a population of
50 with numba's on-disk cache present) and ``first_call_kernel_compile_s`` (the same
with an empty cache: numba compiles the kernel).

Usage: ``python benchmarks/hw_cost.py [--n 1000] [--repeats 5] [--seed 0] [--no-first-call]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.hw import cost_networks, network_from_dict
from crossnas.space.arch import random_arch
from crossnas.space.mnsim import arch_to_network_dict


def random_hardware(rng: np.random.Generator) -> HardwareConfig:
    xbar = int(rng.choice([32, 64, 128, 256]))
    pe = int(rng.choice([1, 2, 4]))
    return HardwareConfig.model_validate({
        "crossbar": {"rows": xbar, "cols": xbar},
        "adc": {"choice": int(rng.integers(1, 9))},
        "dac": {"choice": int(rng.integers(1, 3))},
        "pe": {"polarity": int(rng.choice([1, 2])), "adcs_per_subarray": int(min(xbar, rng.choice([32, 64, 128]))),
               "dacs_per_subarray": int(min(xbar, rng.choice([32, 64, 128])))},
        "tile": {"pe_rows": pe, "pe_cols": pe, "inter_tile_bandwidth_Gbps": float(rng.choice([10, 20, 40])),
                 "intra_tile_bandwidth_Gbps": float(rng.choice([512, 1024, 2048]))},
        "chip": {"digital_frequency_MHz": float(rng.choice([250, 500, 1000])),
                 "buffer_tech_nm": int(rng.choice([45, 65, 90]))},
    })


_FIRST_CALL = """
import time
import numpy as np
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.space.arch import random_arch
from crossnas.space.mnsim import arch_to_network_dict
space = SpaceConfig()
rng = np.random.default_rng(0)
nets = [arch_to_network_dict(random_arch(space, rng, 32), space, (3, 32, 32), 10) for _ in range({n})]
hw = HardwareConfig()
t0 = time.perf_counter()
from crossnas.hw import cost_networks
cost_networks(nets, hw, strict=False)
print(time.perf_counter() - t0)
"""


def first_call_s(n: int, cache_dir: str | None) -> float:
    """Seconds a fresh interpreter takes to import ``crossnas.hw`` and cost ``n`` networks once
    (crossnas.config and the network dicts are ready beforehand)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", _FIRST_CALL.format(n=n)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def cli_batch_ms(dicts: list[dict], hws: list[HardwareConfig], repeats: int, workers: int | None = None) -> float:
    """Per-network time of ``crossnas hw --batch F --json`` (parsing, costing, JSON output):
    the difference of a 10,000-line and a 100-line batch, over the extra lines (median of
    runs); ``workers`` sets ``CROSSNAS_WORKERS`` (default: the CLI's own choice)."""
    def write(path: str, n: int) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for i in range(n):
                d = dicts[i % len(dicts)]
                h = hws[i % len(hws)]
                f.write(json.dumps({**d, "hardware": {"crossbar": {"rows": h.crossbar.rows, "cols": h.crossbar.cols},
                                                      "adc": {"choice": h.adc.choice}}}) + "\n")

    exe = os.path.join(os.path.dirname(sys.executable), "crossnas")
    env = dict(os.environ)
    if workers is not None:
        env["CROSSNAS_WORKERS"] = str(workers)
    n_big, n_small = 10_000, 100
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        big, small = os.path.join(tmp, "big.jsonl"), os.path.join(tmp, "small.jsonl")
        write(big, n_big)
        write(small, n_small)
        for _ in range(repeats):
            times = []
            for path in (big, small):
                t0 = time.perf_counter()
                subprocess.run([exe, "hw", "--batch", path, "--json"], check=True, stdout=subprocess.DEVNULL, env=env)
                times.append(time.perf_counter() - t0)
            out.append((times[0] - times[1]) / (n_big - n_small) * 1e3)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-first-call", action="store_true", help="skip the fresh-process first-call timings")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    space = SpaceConfig()
    dicts = [arch_to_network_dict(random_arch(space, rng, 32), space, (3, 32, 32), 10) for _ in range(args.n)]
    nets = [network_from_dict(d) for d in dicts]
    hws = [random_hardware(rng) for _ in range(args.n)]
    cost_networks(nets[:50], hws[:50], strict=False)  # imports, first-call set-up
    per_net: list[float] = []
    per_pop: list[float] = []
    per_pop_dicts: list[float] = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        for n, h in zip(nets, hws, strict=True):
            cost_networks([n], [h], strict=False)
        per_net.append((time.perf_counter() - t0) / args.n * 1e3)
        t0 = time.perf_counter()
        for i in range(0, args.n, 50):
            cost_networks(nets[i:i + 50], hws[i:i + 50], strict=False)
        per_pop.append((time.perf_counter() - t0) / (args.n / 50) * 1e3)
        t0 = time.perf_counter()
        for i in range(0, args.n, 50):
            cost_networks(dicts[i:i + 50], hws[i:i + 50], strict=False)
        per_pop_dicts.append((time.perf_counter() - t0) / (args.n / 50) * 1e3)
        print(f"repeat {rep}: {per_net[-1]:.3f} ms/network, {per_pop[-1]:.2f} ms/population of 50, "
              f"{per_pop_dicts[-1]:.2f} ms/population of 50 dicts")
    tiles = cost_networks(nets[:200], hws[:200], strict=False)
    fits = np.isfinite(tiles.latency_ms)
    print(f"networks: {args.n} (8 choice layers, CrossNAS space), median latency "
          f"{np.median(tiles.latency_ms[fits]):.3f} ms, median area {np.median(tiles.area_mm2[fits]):.1f} mm2; "
          f"{int((~fits).sum())} of 200 need more tiles than the chip has")
    res = {"per_network_ms": round(statistics.median(per_net), 4),
           "per_population50_ms": round(statistics.median(per_pop), 3),
           "per_network_in_population_ms": round(statistics.median(per_pop) / 50, 4),
           "per_population50_from_dicts_ms": round(statistics.median(per_pop_dicts), 3),
           "n_networks": args.n, "repeats": args.repeats, "mnsim_per_network_ms": 570.0}
    ok = [i for i in range(args.n) if i not in cost_networks(nets, hws, strict=False).errors]
    ok_d, ok_h = [dicts[i] for i in ok], [hws[i] for i in ok]
    res["cli_batch_per_network_ms"] = round(cli_batch_ms(ok_d, ok_h, args.repeats), 4)
    res["cli_batch_serial_per_network_ms"] = round(cli_batch_ms(ok_d, ok_h, args.repeats, workers=1), 4)
    res["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"crossnas hw --batch --json: {res['cli_batch_per_network_ms']:.3f} ms per network (parse + cost + JSON), "
          f"{res['cli_batch_serial_per_network_ms']:.3f} ms in one process; {res['cpus']} CPUs")
    if not args.no_first_call:
        res["first_call_cli_s"] = round(first_call_s(1, None), 3)
        res["first_call_kernel_cached_s"] = round(first_call_s(50, None), 3)
        with tempfile.TemporaryDirectory() as tmp:
            res["first_call_kernel_compile_s"] = round(first_call_s(50, tmp), 3)
        print(f"first call in a fresh process: one network (CLI) {res['first_call_cli_s']:.2f} s, "
              f"population of 50 {res['first_call_kernel_cached_s']:.2f} s (kernel cached on disk), "
              f"{res['first_call_kernel_compile_s']:.2f} s (empty cache: compiling)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
