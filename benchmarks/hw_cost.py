"""Speed of the PIM cost model: random CrossNAS-space networks under random hardware.

Prints figures and, as its last line, one JSON object with ``per_network_ms`` (median
time to cost one network alone, ``cost_networks([net], [hw])``),
``per_population50_ms`` (median time to cost a population of 50 in one call) and
``per_network_in_population_ms`` (the latter / 50).

Usage: ``python benchmarks/hw_cost.py [--n 1000] [--repeats 5] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    space = SpaceConfig()
    nets = [network_from_dict(arch_to_network_dict(random_arch(space, rng, 32), space, (3, 32, 32), 10))
            for _ in range(args.n)]
    hws = [random_hardware(rng) for _ in range(args.n)]
    cost_networks(nets[:50], hws[:50])  # imports, first-call set-up
    per_net: list[float] = []
    per_pop: list[float] = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        for n, h in zip(nets, hws, strict=True):
            cost_networks([n], [h])
        per_net.append((time.perf_counter() - t0) / args.n * 1e3)
        t0 = time.perf_counter()
        for i in range(0, args.n, 50):
            cost_networks(nets[i:i + 50], hws[i:i + 50])
        per_pop.append((time.perf_counter() - t0) / (args.n / 50) * 1e3)
        print(f"repeat {rep}: {per_net[-1]:.3f} ms/network, {per_pop[-1]:.2f} ms/population of 50")
    tiles = cost_networks(nets[:200], hws[:200])
    print(f"networks: {args.n} (8 choice layers, CrossNAS space), median latency "
          f"{np.median(tiles.latency_ms):.3f} ms, median area {np.median(tiles.area_mm2):.1f} mm2")
    print(json.dumps({"per_network_ms": round(statistics.median(per_net), 4),
                      "per_population50_ms": round(statistics.median(per_pop), 3),
                      "per_network_in_population_ms": round(statistics.median(per_pop) / 50, 4),
                      "n_networks": args.n, "repeats": args.repeats, "mnsim_per_network_ms": 570.0}))


if __name__ == "__main__":
    main()
