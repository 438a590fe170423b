"""Supernet training speed (3x32x32 images, batch 96, CPU threads as given).

* ``step_ratio``: one SGD step of the supernet on a sampled path vs one step of the same
  architecture as a static model (``extract``), same batch and layout, measured
  alternately; the median over paths of (median supernet step / median static step).
* ``images_per_s``: supernet training throughput for the paper's space, no quantization,
  on uniformly random valid paths (crossnas' sampler), NHWC batches as in training.
* The published supernet's structure (``_published_style.py``, NCHW, its own path sampler)
  is timed on the same paths, alternately with ours, in the same run:
  ``published_style_images_per_s`` on its own paths and ``speedup_vs_published_style``
  (ours / it, same paths). ``images_per_s_published_paths`` is ours on its paths.
* A roofline: conv + linear FLOPs per training image (forward + backward) of the timed
  paths, this machine's float32 matrix-multiply rate with the same threads, and the
  images/s that rate would give if every FLOP ran at it.

Paths differ ~80x in cost, so every figure uses one fixed list of paths (``--paths``).
CIFAR-scale work on a CPU: about 6 minutes on 2 cores with the defaults.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from _published_style import PublishedStyleSupernet, published_path  # noqa: E402

SHAPE, BATCH = (3, 32, 32), 96


def _sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, fwd: Callable[[torch.Tensor], torch.Tensor],
              x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    loss = F.cross_entropy(fwd(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def _sgd(model: torch.nn.Module, lr: float = 0.001) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)


def _train_gflop_per_image(net: torch.nn.Module, spec: object) -> float:
    x = torch.randn(2, *SHAPE)
    with FlopCounterMode(display=False) as fc:
        net(x, spec).sum().backward()
    net.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 2 / 1e9


def _sgemm_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ratio-paths", type=int, default=5, help="paths for step_ratio")
    ap.add_argument("--reps", type=int, default=5, help="steps per path for step_ratio")
    ap.add_argument("--paths", type=int, default=24, help="paths per sampler for the throughput figures")
    ap.add_argument("--quantize", action="store_true", help="step_ratio with fake quantization")
    ap.add_argument("--nchw", action="store_true", help="feed our supernet NCHW batches (train.channels_last: false)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from crossnas.config.space import SpaceConfig
    from crossnas.space.arch import random_arch
    from crossnas.supernet import Supernet

    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    x = torch.randn(BATCH, *SHAPE)
    x_ours = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (BATCH,))

    # ---- step ratio: supernet vs its extracted static model --------------------------------
    space = SpaceConfig(quantize=args.quantize)
    torch.manual_seed(0)
    net = Supernet(space, SHAPE, 10).train()
    opt_n = _sgd(net, 0.01)
    rng = np.random.default_rng(0)
    ratios = []
    for p in range(args.ratio_paths):
        spec = random_arch(space, rng, 32)
        static = net.extract(spec).train()
        opt_s = _sgd(static, 0.01)
        _sgd_step(net, opt_n, lambda z, s=spec: net(z, s), x_ours, y)  # warm-up
        _sgd_step(static, opt_s, static, x_ours, y)
        tn, ts = [], []
        for _ in range(args.reps):
            tn.append(_sgd_step(net, opt_n, lambda z, s=spec: net(z, s), x_ours, y))
            ts.append(_sgd_step(static, opt_s, static, x_ours, y))
        r = statistics.median(tn) / statistics.median(ts)
        ratios.append(r)
        print(f"path {p}: {spec}  supernet {statistics.median(tn) * 1e3:.1f} ms  static "
              f"{statistics.median(ts) * 1e3:.1f} ms  ratio {r:.3f}", flush=True)

    # ---- throughput, ours vs the published structure, same paths, alternately -------------
    space_fp = SpaceConfig(quantize=False)
    torch.manual_seed(0)
    ours = Supernet(space_fp, SHAPE, 10).train()
    pub = PublishedStyleSupernet().train()
    opt_o, opt_p = _sgd(ours), _sgd(pub)
    rng = np.random.default_rng(1)
    uniform = [random_arch(space_fp, rng, 32) for _ in range(args.paths)]
    published = [published_path(rng) for _ in range(args.paths)]
    for s in uniform[:2]:  # warm-up
        _sgd_step(ours, opt_o, lambda z, s=s: ours(z, s), x_ours, y)
        _sgd_step(pub, opt_p, lambda z, s=s: pub(z, s), x, y)
    t_ours: dict[str, list[float]] = {"uniform": [], "published": []}
    t_pub: dict[str, list[float]] = {"uniform": [], "published": []}
    for name, paths in (("uniform", uniform), ("published", published)):
        for i, s in enumerate(paths):
            a = _sgd_step(ours, opt_o, lambda z, s=s: ours(z, s), x_ours, y)
            b = _sgd_step(pub, opt_p, lambda z, s=s: pub(z, s), x, y)
            t_ours[name].append(a)
            t_pub[name].append(b)
            print(f"{name} path {i}: {s}  ours {a * 1e3:.0f} ms  published-style {b * 1e3:.0f} ms", flush=True)

    def ips(ts: list[float]) -> float:
        return len(ts) * BATCH / sum(ts)

    gflop = {name: statistics.fmean(_train_gflop_per_image(ours, s) for s in paths)
             for name, paths in (("uniform", uniform), ("published", published))}
    peak = _sgemm_gflops()
    out = {
        "step_ratio": round(statistics.median(ratios), 3),
        "step_ratios": [round(r, 3) for r in ratios],
        "images_per_s": round(ips(t_ours["uniform"]), 1),
        "images_per_s_published_paths": round(ips(t_ours["published"]), 1),
        "published_style_images_per_s": round(ips(t_pub["published"]), 1),
        "published_style_images_per_s_uniform_paths": round(ips(t_pub["uniform"]), 1),
        "speedup_vs_published_style": round(sum(t_pub["published"]) / sum(t_ours["published"]), 3),
        "speedup_vs_published_style_uniform_paths": round(sum(t_pub["uniform"]) / sum(t_ours["uniform"]), 3),
        "train_gflop_per_image": round(gflop["uniform"], 3),
        "train_gflop_per_image_published_paths": round(gflop["published"], 3),
        "achieved_gflops": round(ips(t_ours["uniform"]) * gflop["uniform"], 1),
        "sgemm_gflops": round(peak, 1),
        "roofline_images_per_s": round(peak / gflop["uniform"], 1),
        "roofline_images_per_s_published_paths": round(peak / gflop["published"], 1),
        "paths": args.paths,
        "threads": args.threads,
        "layout": "nchw" if args.nchw else "channels_last",
        "quantize_in_step_ratio": args.quantize,
    }
    print(f"step_ratio {out['step_ratio']}; images/s {out['images_per_s']} (uniform paths), "
          f"{out['images_per_s_published_paths']} (published paths) vs published-style "
          f"{out['published_style_images_per_s']} -> {out['speedup_vs_published_style']}x; roofline "
          f"{out['roofline_images_per_s']} img/s at {out['sgemm_gflops']} GFLOP/s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
