"""Digits quality figures of the default supernet config.

Trains the supernet with ``configs/supernet_digits.yaml`` (or ``--config``), then scores 20
random subnets (BN recalibrated, inherited weights) on the validation split, reports the
best, the scoring throughput (candidates/minute), and optionally (``--kendall N``) trains
N random subnets from scratch with the same data and measures Kendall's tau between the
inherited and the from-scratch validation accuracies, and between the inherited and the
from-scratch validation cross-entropy losses (finer-grained than accuracy where accuracies
saturate). With ``--scratch-seeds 2`` each subnet is trained from scratch twice and the tau
between the two from-scratch rankings is reported too: the noise ceiling of any proxy's
tau on this data. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "supernet_digits.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--kendall", type=int, default=0, help="subnets trained from scratch for Kendall tau (0 = skip)")
    ap.add_argument("--scratch-epochs", type=int, default=30)
    ap.add_argument("--scratch-seeds", type=int, default=1, help="from-scratch trainings per subnet (2+ gives the noise ceiling)")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--supernet", default=None, help="reuse a trained supernet run dir (e.g. runs/digits/supernet)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from crossnas.config.loading import parse_set_options
    from crossnas.config.supernet_run import SupernetRunConfig
    from crossnas.data import load_data
    from crossnas.space.arch import random_arch
    from crossnas.supernet import SubnetScorer, build_static
    from crossnas.train import train_static, train_supernet

    if args.supernet:
        from crossnas.train import load_supernet

        run = load_supernet(args.supernet)
        cfg, net, train_s = run.config, run.net, float("nan")
        data = load_data(cfg.data)
    else:
        cfg = SupernetRunConfig.from_file(args.config, parse_set_options(args.set))
        data = load_data(cfg.data)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train_supernet(cfg, Path(tmp) / "run", data=data)
            train_s = time.perf_counter() - t0
        net = res.model
    scorer = SubnetScorer(net, data, bn_batches=cfg.train.val_bn_batches, batch_size=cfg.data.batch_size)
    rng = np.random.default_rng(12345)
    specs = [random_arch(cfg.space, rng, data.input_hw) for _ in range(args.n_random)]
    t0 = time.perf_counter()
    accs = scorer.score_many(specs)
    score_s = time.perf_counter() - t0
    best = int(np.argmax(accs))
    out = {
        "supernet_train_s": round(train_s, 1),
        "epochs": cfg.train.epochs,
        "best_of_random_val_acc": accs[best],
        "best_arch": str(specs[best]),
        "median_random_val_acc": float(np.median(accs)),
        "candidates_per_min": round(60 * len(specs) / score_s, 1),
    }
    print(f"supernet training: {train_s:.1f} s ({cfg.train.epochs} epochs)")
    for s, a in sorted(zip(specs, accs, strict=True), key=lambda t: -t[1])[:5]:
        print(f"  {a:6.1%}  {s}")
    print(f"best of {len(specs)} random subnets: {accs[best]:.1%}; median {np.median(accs):.1%}; "
          f"scoring {out['candidates_per_min']} candidates/min")
    if args.kendall:
        import torch.nn.functional as F
        from scipy.stats import kendalltau

        from crossnas.config.train import TrainConfig

        def val_loss(model: torch.nn.Module) -> float:
            model.eval()
            with torch.no_grad():
                return float(F.cross_entropy(model(data.val_x), data.val_y).item())

        ks = specs[: args.kendall]
        inherited = accs[: args.kendall]
        inherited_loss = [val_loss(scorer.extract(s)) for s in ks]
        tc = TrainConfig(**{**cfg.train.model_dump(), "epochs": args.scratch_epochs, "weight_noise": 0.0})
        scratch = np.zeros((args.scratch_seeds, len(ks)))
        scratch_loss = np.zeros_like(scratch)
        for k in range(args.scratch_seeds):
            for i, s in enumerate(ks):
                seed = 1000 + i + 100 * k
                torch.manual_seed(seed)
                m = build_static(s, cfg.space, data.input_shape, data.n_classes)
                r = train_static(m, data, tc, data_cfg=cfg.data, seed=seed)
                scratch[k, i], scratch_loss[k, i] = r.extra["val_acc"], val_loss(r.model)
                print(f"  seed {k}: scratch {scratch[k, i]:6.1%} (loss {scratch_loss[k, i]:.3f})  inherited "
                      f"{inherited[i]:6.1%} (loss {inherited_loss[i]:.3f})  {s}", flush=True)
        tau = kendalltau(inherited, scratch.mean(0)).statistic
        tau_loss = kendalltau(inherited_loss, scratch_loss.mean(0)).statistic
        out.update({"kendall_tau": float(tau), "kendall_tau_loss": float(tau_loss), "kendall_n": len(ks),
                    "scratch_epochs": args.scratch_epochs, "scratch_seeds": args.scratch_seeds,
                    "scratch_val_acc": scratch.tolist(), "scratch_val_loss": scratch_loss.tolist(),
                    "inherited_val_acc": inherited, "inherited_val_loss": inherited_loss})
        if args.scratch_seeds >= 2:
            out["kendall_tau_seed_to_seed"] = float(kendalltau(scratch[0], scratch[1]).statistic)
            out["kendall_tau_loss_seed_to_seed"] = float(kendalltau(scratch_loss[0], scratch_loss[1]).statistic)
        print(f"Kendall tau (inherited vs from scratch, {len(ks)} subnets): accuracy {tau:.3f}, loss {tau_loss:.3f}"
              + (f"; from-scratch seed vs seed: accuracy {out['kendall_tau_seed_to_seed']:.3f}, loss "
                 f"{out['kendall_tau_loss_seed_to_seed']:.3f}" if args.scratch_seeds >= 2 else ""))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
