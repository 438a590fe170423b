"""EPIM epitomes: crossbars vs accuracy of one fixed network at wrap m in {1, 2, 4}.

The same architecture with every choice layer wrapped m times (``e2``/``e4`` suffix) is
trained from scratch on digits (quantization-aware, the digits retrain settings), then
scored digitally (quantized test accuracy) and on simulated crossbars (the digits
evaluation chip: 2 % conductance variation, Monte-Carlo mean), and costed (crossbars of
the wrapped layers and of the whole network, area, energy; ``cost_mode=corrected`` so that
bits per cell count, and ``mnsim``). Seeds are averaged. Prints progress lines and, last,
one JSON object.

With ``--dataset fashion_mnist --root DIR`` (IDX files; the Fashion-MNIST config's data
and training settings: 55,000/5,000 split, batch 128, lr 0.05, no augmentation, a seeded
500-image test subset unless ``--test-images``, widths 16-64, bits 3-8) the default network is
``V32w6a6-R32w6a6-V32w6a6-R32w6a6`` and ``--epochs`` defaults to 2.

``--out-wrap-max 2`` caps every conv's output wrap (``e4o2``: the same crossbars as ``e4`` on
arrays narrower than the layer, twice the filters). ``--save-dir DIR`` keeps each trained
model; ``--from-dense DIR`` starts each wrapped row from the saved dense model of its seed,
projected onto its epitomes, and fine-tunes it (the m = 1 row then only scores the saved model).

Usage: ``python benchmarks/epitome.py [--arch V32w7a7-R64w7a7-V64w7a7-R64w7a7] [--seeds 2]
[--epochs 60] [--crossbar 64] [--dataset digits|fashion_mnist] [--root DIR]
[--wraps 1,2,4,2-4-4-4] [--anneal] [--out-wrap-max 2] [--save-dir DIR] [--from-dense DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.config.train import TrainConfig
from crossnas.data import load_data
from crossnas.hw import cost_network
from crossnas.pimsim import pim_accuracy
from crossnas.quant import load_dense_state
from crossnas.space.arch import ArchSpec
from crossnas.space.mnsim import arch_to_network_dict
from crossnas.supernet import build_static
from crossnas.train.loop import evaluate_accuracy
from crossnas.train.static import train_static
from crossnas.utils.io import atomic_open


def wrapped(arch: str, m: int | str, out_max: int | None = None) -> ArchSpec:
    """``arch`` with every block wrapped ``m`` times, or per block: ``m = "2-4-4-4"`` (one
    factor per choice layer, skips included); output wraps capped at ``out_max`` (``e4o2``)."""
    toks = arch.split("-")
    ms = [int(x) for x in str(m).split("-")] if "-" in str(m) else [int(m)] * len(toks)
    if len(ms) != len(toks):
        raise SystemExit(f"--wraps: {m!r} names {len(ms)} layers, the arch has {len(toks)}")

    def token(t: str, k: int) -> str:
        if t == "S" or k == 1:
            return t
        return f"{t}e{k}" + (f"o{out_max}" if out_max is not None and out_max < k else "")

    return ArchSpec.from_string("-".join(token(t, k) for t, k in zip(toks, ms, strict=True)))


def _pct(values: list[float]) -> str:
    return ", ".join(f"{100 * v:.2f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=None)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--crossbar", type=int, default=64)
    ap.add_argument("--mc", type=int, default=3)
    ap.add_argument("--dataset", choices=["digits", "fashion_mnist"], default="digits")
    ap.add_argument("--root", default=None, help="fashion_mnist: the folder with the IDX files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1 (split one measurement over processes)")
    ap.add_argument("--test-images", type=int, default=None,
                    help="fashion_mnist: test images for the quantized accuracy (default 500; 0 = all 10,000)")
    ap.add_argument("--pim-images", type=int, default=None,
                    help="score PIM accuracy on the first N of those test images (default: all of them)")
    ap.add_argument("--wraps", default="1,2,4",
                    help="comma-separated wrap factors, the first the baseline; one may be per layer, e.g. 2-4-4-4")
    ap.add_argument("--anneal", action="store_true",
                    help="step the cosine schedule per optimiser step (train.scheduler_interval: step), so a short "
                         "training ends at min_lr; the default steps it per epoch")
    ap.add_argument("--save-dir", default=None,
                    help="save each trained model's state_dict as DIR/<m>_s<seed>.pt (e.g. for --from-dense)")
    ap.add_argument("--from-dense", default=None, metavar="DIR",
                    help="start from the dense models a --save-dir run saved (DIR/1_s<seed>.pt): the m = 1 row "
                         "only scores them, each wrapped row projects them onto its epitomes (the nearest "
                         "epitome, crossnas.quant.project_epitome) and fine-tunes for --epochs")
    ap.add_argument("--out-wrap-max", type=int, default=None,
                    help="cap every conv's output wrap (space.epitome_out_max): m = 4 becomes e4o2")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the dataset's recipe)")
    args = ap.parse_args()
    if args.out_wrap_max is not None and not 1 <= args.out_wrap_max <= 64:
        ap.error(f"--out-wrap-max: must be in 1..64 (space.epitome_out_max), got {args.out_wrap_max}")
    torch.set_num_threads(args.threads)
    schedule = "step" if args.anneal else "epoch"
    head = {"pool": 2, "fc": (), "dropout": 0.2}
    if args.dataset == "digits":
        space = SpaceConfig(n_layers=4, widths=(16, 32, 64), w_bits=(5, 7, 9), a_bits=(5, 7, 9), epitome=(1, 2, 4),
                            head=head, epitome_out_max=args.out_wrap_max)
        data_cfg = DataConfig()
        arch = args.arch or "V32w7a7-R64w7a7-V64w7a7-R64w7a7"
        train_cfg = TrainConfig(epochs=args.epochs or 60, lr=args.lr or 0.02, weight_noise=0.02, scheduler_interval=schedule)
    else:
        bits = (3, 4, 5, 6, 7, 8)
        space = SpaceConfig(n_layers=4, widths=(16, 24, 32, 48, 64), w_bits=bits, a_bits=bits, epitome=(1, 2, 4),
                            head=head, epitome_out_max=args.out_wrap_max)
        data_cfg = DataConfig(dataset="fashion_mnist", root=args.root, batch_size=128, eval_batch_size=1000,
                              mnist_val=5000, augment=False,
                              test_images=None if args.test_images == 0 else (args.test_images or 500))
        arch = args.arch or "V32w6a6-R32w6a6-V32w6a6-R32w6a6"
        train_cfg = TrainConfig(epochs=args.epochs or 2, lr=args.lr or 0.05, weight_noise=0.02, val_subnets=0,
                                scheduler_interval=schedule)
    args.arch = arch
    data = load_data(data_cfg)
    hw = HardwareConfig.model_validate({"crossbar": {"rows": args.crossbar, "cols": args.crossbar},
                                        "adc": {"choice": 2}, "dac": {"choice": 2}, "device": {"variation_pct": 2.0}})
    rows = []
    for m in args.wraps.split(","):
        spec = wrapped(args.arch, m, args.out_wrap_max)
        net = arch_to_network_dict(spec, space, data.input_shape, data.n_classes)
        costs = {mode: cost_network(net, hw.with_updates(cost_mode=mode)) for mode in ("mnsim", "corrected")}
        xb = costs["corrected"]["layers"]
        q, p = [], []
        t0 = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            torch.manual_seed(seed)
            model = build_static(spec, space, data.input_shape, data.n_classes)
            if args.from_dense:
                source = os.path.join(args.from_dense, f"1_s{seed}.pt")
                if not os.path.isfile(source):
                    raise SystemExit(f"--from-dense: {source} not found (save it with --save-dir and --wraps 1)")
                load_dense_state(model, torch.load(source, weights_only=True))
            if args.from_dense and not any(layer.wrapped for layer in spec.layers):
                model.eval()
                with torch.no_grad():
                    q.append(evaluate_accuracy(model, data.test_x, data.test_y, batch_size=data_cfg.eval_batch_size))
            else:
                res = train_static(model, data, train_cfg, data_cfg=data_cfg, seed=seed)
                q.append(float(res.extra["test_acc"]))
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                with atomic_open(os.path.join(args.save_dir, f"{m}_s{seed}.pt"), "wb") as f:
                    torch.save(model.state_dict(), f)
            n_pim = args.pim_images or len(data.test_y)
            r = pim_accuracy(model.eval(), hw, data.test_x[:n_pim], data.test_y[:n_pim], mc_runs=args.mc, seed=seed,
                             calibration_x=data.train_x[:256])
            p.append(float(r.mean))
        row = {
            "arch": str(spec), "m": m, "crossbars": costs["corrected"]["crossbars"],
            "conv_crossbars": sum(ly["crossbars"] for ly in xb if ly["type"] == "conv"),
            "crossbars_mnsim": costs["mnsim"]["crossbars"], "area_mm2": costs["corrected"]["area_mm2"],
            "energy_mJ": costs["corrected"]["energy_mJ"],
            "quantized_accuracy": statistics.mean(q), "pim_accuracy": statistics.mean(p),
            "quantized_by_seed": q, "pim_by_seed": p, "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        print(f"m={m} {row['arch']}: crossbars {row['crossbars']} (conv {row['conv_crossbars']}), quantized "
              f"{100 * row['quantized_accuracy']:.2f} %, PIM {100 * row['pim_accuracy']:.2f} % (by seed: quantized "
              f"{_pct(q)}; PIM {_pct(p)})", flush=True)
    base = rows[0]
    for row in rows:
        row["crossbar_reduction"] = round(base["crossbars"] / row["crossbars"], 2)
        row["accuracy_drop_points"] = round(100 * (base["quantized_accuracy"] - row["quantized_accuracy"]), 2)
    print(json.dumps({"rows": rows, "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
                      "epochs": train_cfg.epochs, "lr": train_cfg.lr, "out_wrap_max": args.out_wrap_max, "from_dense": args.from_dense,
                      "scheduler_interval": train_cfg.scheduler_interval, "crossbar": args.crossbar, "dataset": args.dataset,
                      "test_images": len(data.test_y), "pim_images": args.pim_images or len(data.test_y)}))


if __name__ == "__main__":
    main()
