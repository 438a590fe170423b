"""Supernet training speed.

* ``step_ratio``: one SGD step of the supernet on a sampled path vs one step of the same
  architecture as a static model (``extract``), same batch, measured alternately; the
  median over paths of (median supernet step / median static step).
* ``images_per_s``: supernet training throughput for the paper space at 3x32x32, batch 96,
  2 threads, no quantization, uniformly random paths (the published CrossNAS supernet code:
  62.5 images/s on the reference machine).

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F


def _sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, fwd, x: torch.Tensor, y: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    loss = F.cross_entropy(fwd(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="steps for images_per_s")
    ap.add_argument("--quantize", action="store_true", help="step_ratio with fake quantization")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from crossnas.config.space import SpaceConfig
    from crossnas.space.arch import random_arch
    from crossnas.supernet import Supernet

    space = SpaceConfig(quantize=args.quantize)
    shape, bs = (3, 32, 32), 96
    torch.manual_seed(0)
    net = Supernet(space, shape, 10).train()
    opt_n = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
    rng = np.random.default_rng(0)
    x = torch.randn(bs, *shape)
    y = torch.randint(0, 10, (bs,))

    ratios = []
    for p in range(args.paths):
        spec = random_arch(space, rng, 32)
        static = net.extract(spec).train()
        opt_s = torch.optim.SGD(static.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
        _sgd_step(net, opt_n, lambda z: net(z, spec), x, y)  # warm-up
        _sgd_step(static, opt_s, static, x, y)
        tn, ts = [], []
        for _ in range(args.reps):
            tn.append(_sgd_step(net, opt_n, lambda z: net(z, spec), x, y))
            ts.append(_sgd_step(static, opt_s, static, x, y))
        r = statistics.median(tn) / statistics.median(ts)
        ratios.append(r)
        print(f"path {p}: {spec}  supernet {statistics.median(tn) * 1e3:.1f} ms  static {statistics.median(ts) * 1e3:.1f} ms  ratio {r:.3f}")

    # throughput on uniformly random paths, no quantization (paper setting)
    space_fp = SpaceConfig(quantize=False)
    torch.manual_seed(0)
    net_fp = Supernet(space_fp, shape, 10).train()
    opt = torch.optim.SGD(net_fp.parameters(), lr=0.001, momentum=0.9, weight_decay=3e-4)
    rng = np.random.default_rng(1)
    for _ in range(2):
        s = random_arch(space_fp, rng, 32)
        _sgd_step(net_fp, opt, lambda z, s=s: net_fp(z, s), x, y)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        s = random_arch(space_fp, rng, 32)
        _sgd_step(net_fp, opt, lambda z, s=s: net_fp(z, s), x, y)
    ips = args.steps * bs / (time.perf_counter() - t0)
    out = {"step_ratio": round(statistics.median(ratios), 3), "step_ratios": [round(r, 3) for r in ratios],
           "images_per_s": round(ips, 1), "threads": args.threads, "quantize_in_step_ratio": args.quantize}
    print(f"step_ratio (median over {len(ratios)} paths): {out['step_ratio']}; images/s (paper space, 32x32, batch 96): {ips:.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
