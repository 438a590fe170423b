"""Does the method work? The issue-15 measurements on Fashion-MNIST (``configs/fashion_mnist.yaml``).

Three parts, each skipped unless asked for; every figure lands in the final JSON line.

1. **Supernet ranking** (``--kendall N``): ``N`` (≥ 10) random subnets of the space (seed
   12345), scored with inherited weights (BN recalibrated, fake-quantized at their bits)
   on the validation split, then each trained from scratch ``--scratch-seeds`` (≥ 2)
   times for ``--scratch-epochs`` with the config's ``retrain`` optimiser (no weight
   noise). Reported: Kendall τ of inherited vs mean from-scratch validation accuracy (and
   cross-entropy loss), the seed-to-seed τ of the from-scratch rankings (the noise
   ceiling no proxy can beat; with 4+ seeds also the split-half τ of half-seed means),
   a bootstrap standard error of τ over the subnets, inherited and from-scratch accuracies
   per subnet.
   Goal of the issue: ceiling ≥ 0.7 and τ ≥ 0.5.
2. **Search vs baselines** (``--compare DIR``): ``crossnas compare`` (joint search vs
   random, two-stage and hardware-blind baselines, seeds ``--compare-seeds``) on the trained
   supernet; its hypervolumes at reference accuracy 0 and at ``--reference-accuracy``
   are read back from ``DIR/compare.json``.
3. **Winners** (``--run RUN_DIR``): a finished ``crossnas run -c configs/fashion_mnist.yaml``;
   its ``summary.json`` (PIM accuracy mean ± std, quantized accuracy, latency, energy, EDP,
   area, search time) is copied into the output.

The supernet is trained here (``--config``, ``--set``) unless ``--supernet RUN/supernet``
reuses one (e.g. the run of part 3). ``--split`` must say which Fashion-MNIST split
``data.root`` holds: ``official`` (``crossnas data fetch fashion-mnist``) or ``stratified``
(``../shared/data/fetch.sh fashion-mnist``; its accuracies compare between our runs only).

Cost on 2 CPU cores (see the estimate at the top of the config): part 1 with N = 10,
2 seeds, 2 scratch epochs ≈ 40 trainings of ~3-6 min each; part 2 ≈ 15 searches.
The from-scratch target does not depend on the supernet: ``--scratch-only
--scratch-cache FILE`` trains it once (resumable; two cores: a second process with
``--scratch-reverse`` and its own cache file, the two JSON caches joined by recipe), and
``--kendall N --scratch-cache FILE --supernet DIR`` then ranks any supernet against it in
minutes; ``--inherited-from OLD_OUTPUT`` ranks the inherited scores an earlier run printed
against a grown target without the supernet. (Older route: ``--scratch-seed-offset`` per
process and ``--merge A.json B.json``.)

Usage::

    python benchmarks/fashion_mnist.py --split stratified --set data.root=data/fashion-mnist \\
        --supernet runs/fmnist/supernet --kendall 10 --scratch-seeds 2 --run runs/fmnist

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIG = Path(__file__).resolve().parents[1] / "src" / "crossnas" / "configs" / "fashion_mnist.yaml"


def _subnets(cfg: Any, input_hw: int, n: int) -> list[Any]:
    from crossnas.space.arch import random_arch

    rng = np.random.default_rng(12345)
    return [random_arch(cfg.space, rng, input_hw) for _ in range(n)]


def _val_loss(model: torch.nn.Module, data: Any) -> float:
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        losses = [F.cross_entropy(model(data.val_x[i:i + 1000]), data.val_y[i:i + 1000], reduction="sum")
                  for i in range(0, len(data.val_y), 1000)]
    return float(sum(losses)) / len(data.val_y)


def _scratch(args: argparse.Namespace, cfg: Any, data: Any, specs: list[Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """From-scratch validation accuracy and loss, ``(seeds, subnets)`` each, and seconds per training.

    With ``--scratch-cache FILE`` every finished training is stored there (atomically) under
    its recipe, subnet and seed, and found there again: the target is trained once and
    reused for any supernet, and an interrupted run resumes. Subnets run in order, both
    seeds of one before the next, so a partial cache still pairs seeds."""
    from crossnas.config.run import load_run_config
    from crossnas.config.train import TrainConfig
    from crossnas.supernet import build_static
    from crossnas.train import train_static
    from crossnas.utils.io import write_json

    retrain = load_run_config(args.config, _overrides(args.set)).retrain
    tc = TrainConfig(**{**retrain.model_dump(exclude={"winners"}), "epochs": args.scratch_epochs,
                        "weight_noise": 0.0, "val_subnets": 0})
    cache_path = Path(args.scratch_cache) if args.scratch_cache else None
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    recipe = f"epochs={args.scratch_epochs},images={args.scratch_images},lr={tc.lr},opt={tc.optimizer}"
    if tc.scheduler_interval != "epoch":  # (older cache entries are per-epoch schedules)
        recipe += f",sched={tc.scheduler_interval}"
    book = cache.setdefault(recipe, {})
    scratch = np.zeros((args.scratch_seeds, len(specs)))
    scratch_loss = np.zeros_like(scratch)
    train_data = data
    if args.scratch_images:  # a seeded subset of the training split (the validation split stays whole)
        import dataclasses

        pick = torch.from_numpy(np.random.default_rng(0).permutation(len(data.train_y))[:args.scratch_images])
        train_data = dataclasses.replace(data, train_x=data.train_x[pick], train_y=data.train_y[pick])
    t0, trained = time.perf_counter(), 0
    order = list(enumerate(specs))
    for i, s in (order[::-1] if args.scratch_reverse else order):
        for k in range(args.scratch_seeds):
            seed = 1000 + i + 100 * (k + args.scratch_seed_offset)
            key = f"{s}@{seed}"
            if key not in book:
                torch.manual_seed(seed)
                m = build_static(s, cfg.space, data.input_shape, data.n_classes)
                r = train_static(m, train_data, tc, data_cfg=cfg.data, seed=seed)
                book[key] = [float(r.extra["val_acc"]), _val_loss(r.model, data)]
                trained += 1
                if cache_path is not None:
                    write_json(cache_path, cache)
            scratch[k, i], scratch_loss[k, i] = book[key]
            print(f"seed {k}: scratch {scratch[k, i]:6.1%} (loss {scratch_loss[k, i]:.3f})  {s}", flush=True)
    return scratch, scratch_loss, (time.perf_counter() - t0) / max(trained, 1)


def _ranking(args: argparse.Namespace, cfg: Any, net: Any, data: Any,
             previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ranking part: the supernet ``net`` scores the subnets, or ``previous`` (the output
    of an earlier ranking run of the same subnets) supplies its inherited scores; neither:
    the from-scratch target only."""
    from scipy.stats import kendalltau

    from crossnas.supernet import SubnetScorer

    specs = _subnets(cfg, data.input_hw, args.kendall)
    scratch, scratch_loss, train_s = _scratch(args, cfg, data, specs)
    out: dict[str, Any] = {
        "kendall_n": len(specs), "scratch_epochs": args.scratch_epochs, "scratch_seeds": args.scratch_seeds,
        "scratch_images": args.scratch_images or len(data.train_y),
        "archs": [str(s) for s in specs],
        "scratch_val_acc": scratch.tolist(), "scratch_val_loss": scratch_loss.tolist(),
        "scratch_train_s": round(train_s, 1), "scratch_seed_offset": args.scratch_seed_offset,
    }
    out.update(_seed_agreement(scratch, scratch_loss))
    if previous is not None:
        if previous.get("archs") != out["archs"] or "inherited_val_acc" not in previous:
            raise SystemExit("--inherited-from: that file holds no inherited scores of these subnets")
        inherited, inherited_loss = previous["inherited_val_acc"], previous["inherited_val_loss"]
        out["inherited_from"] = args.inherited_from
    elif net is None:
        return out
    else:
        scorer = SubnetScorer(net, data, bn_batches=cfg.train.val_bn_batches, batch_size=cfg.data.batch_size)
        t0 = time.perf_counter()
        inherited = [float(a) for a in scorer.score_many(specs)]
        out["inherited_score_s"] = round((time.perf_counter() - t0) / len(specs), 2)
        inherited_loss = [_val_loss(scorer.extract(s), data) for s in specs]
    for i, s in enumerate(specs):
        print(f"inherited {inherited[i]:6.1%} (loss {inherited_loss[i]:.3f}), scratch mean "
              f"{scratch[:, i].mean():6.1%}  {s}", flush=True)
    out.update({
        "inherited_val_acc": inherited, "inherited_val_loss": inherited_loss,
        "kendall_tau": float(kendalltau(inherited, scratch.mean(0)).statistic),
        "kendall_tau_loss": float(kendalltau(inherited_loss, scratch_loss.mean(0)).statistic),
        "kendall_tau_bootstrap_se": _tau_bootstrap_se(inherited, scratch.mean(0)),
    })
    return out


def _merge(paths: list[str]) -> dict[str, Any]:
    """Joins ranking runs made with different ``--scratch-seed-offset`` (the same subnets and
    supernet, e.g. one process per core) and computes the Kendall taus over all their seeds."""
    from scipy.stats import kendalltau

    runs = [json.loads(Path(p).read_text().strip().splitlines()[-1]) for p in paths]
    first = runs[0]
    for r in runs[1:]:
        if r["archs"] != first["archs"] or r["inherited_val_acc"] != first["inherited_val_acc"]:
            raise SystemExit("--merge: the runs rank different subnets or supernets")
    scratch = np.concatenate([np.array(r["scratch_val_acc"]) for r in runs])
    scratch_loss = np.concatenate([np.array(r["scratch_val_loss"]) for r in runs])
    out = {k: first[k] for k in ("dataset", "split", "config", "set", "supernet_epochs", "kendall_n", "scratch_epochs",
                                  "scratch_images",
                                  "archs", "inherited_val_acc", "inherited_val_loss", "inherited_score_s") if k in first}
    out.update({
        "scratch_seeds": int(scratch.shape[0]), "scratch_val_acc": scratch.tolist(),
        "scratch_val_loss": scratch_loss.tolist(), "merged_from": paths,
        "kendall_tau": float(kendalltau(first["inherited_val_acc"], scratch.mean(0)).statistic),
        "kendall_tau_loss": float(kendalltau(first["inherited_val_loss"], scratch_loss.mean(0)).statistic),
        "scratch_train_s": statistics.mean(r["scratch_train_s"] for r in runs),
    })
    out.update(_seed_agreement(scratch, scratch_loss))
    out["kendall_tau_bootstrap_se"] = _tau_bootstrap_se(first["inherited_val_acc"], scratch.mean(0))
    return out


def _seed_agreement(scratch: np.ndarray, scratch_loss: np.ndarray) -> dict[str, float]:
    """How reproducible the from-scratch target is (``(seeds, subnets)`` arrays): its noise ceiling.

    ``kendall_tau_seed_to_seed``: mean τ between the rankings of two single seeds, over every
    pair — the ceiling of a one-seed target. ``kendall_tau_split_half`` (4 or more seeds): mean
    τ between the mean rankings of two disjoint halves of the seeds, over every split — the
    ceiling of a target that averages half the seeds (the all-seed mean that the supernet is
    ranked against is at least as reproducible)."""
    from itertools import combinations

    from scipy.stats import kendalltau

    def tau(a: np.ndarray, b: np.ndarray) -> float:
        return float(kendalltau(a, b).statistic)

    n, out = len(scratch), dict[str, float]()
    if n < 2:
        return out
    pairs = list(combinations(range(n), 2))
    out["kendall_tau_seed_to_seed"] = statistics.mean(tau(scratch[a], scratch[b]) for a, b in pairs)
    out["kendall_tau_loss_seed_to_seed"] = statistics.mean(tau(scratch_loss[a], scratch_loss[b]) for a, b in pairs)
    if n >= 4:
        half = n // 2
        splits = [(list(h), [k for k in range(n) if k not in h][:half]) for h in combinations(range(n), half) if 0 in h]
        for key, arr in (("kendall_tau_split_half", scratch), ("kendall_tau_loss_split_half", scratch_loss)):
            out[key] = statistics.mean(tau(arr[a].mean(0), arr[b].mean(0)) for a, b in splits)
    return out


def _tau_bootstrap_se(proxy: Any, target: Any, draws: int = 2000) -> float:
    """Standard error of Kendall τ from resampling the subnets (seeded; ties from repeats count as ties)."""
    from scipy.stats import kendalltau

    x, y = np.asarray(proxy, dtype=float), np.asarray(target, dtype=float)
    rng = np.random.default_rng(0)
    taus = [kendalltau(x[i], y[i]).statistic for i in (rng.integers(0, len(x), len(x)) for _ in range(draws))]
    return float(np.nanstd(taus))


def _overrides(sets: list[str]) -> dict[str, Any]:
    from crossnas.config.loading import parse_set_options

    return parse_set_options(sets)


def _compare(args: argparse.Namespace, supernet_dir: Path) -> dict[str, Any]:
    from crossnas.cli.main import main as cli

    out = Path(args.compare)
    argv = ["compare", "-c", str(args.config), "-o", str(out), "--supernet", str(supernet_dir),
            "--seeds", args.compare_seeds, "--reference-accuracy", str(args.reference_accuracy)]
    for s in args.set:
        argv += ["--set", s]
    rc = cli(argv)
    if rc != 0:
        raise SystemExit(f"crossnas compare exited with {rc}")
    return {"compare": json.loads((out / "compare.json").read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. data.root=DIR")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="join the outputs (files) of ranking runs with different --scratch-seed-offset; nothing else")
    ap.add_argument("--scratch-seed-offset", type=int, default=0,
                    help="from-scratch seeds start at this index (one process per core, joined with --merge)")
    ap.add_argument("--split", required=False, choices=["official", "stratified"],
                    help="which Fashion-MNIST split data.root holds (reported with every figure)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--supernet", default=None, help="reuse a trained supernet run dir (else train one here)")
    ap.add_argument("--kendall", type=int, default=0, help="random subnets for the ranking part (0 = skip)")
    ap.add_argument("--scratch-epochs", type=int, default=2)
    ap.add_argument("--scratch-images", type=int, default=0,
                    help="train from scratch on a seeded subset of this many training images (0 = all)")
    ap.add_argument("--scratch-seeds", type=int, default=2)
    ap.add_argument("--scratch-cache", default=None,
                    help="JSON file keeping every from-scratch result (reused across supernets, resumes)")
    ap.add_argument("--scratch-reverse", action="store_true",
                    help="train the subnets last first (a second process with its own cache; join the caches after)")
    ap.add_argument("--scratch-only", action="store_true",
                    help="only train the from-scratch target (--kendall N subnets of --config's space; no supernet)")
    ap.add_argument("--inherited-from", default=None,
                    help="a ranking run's output (its last line): rank its inherited scores against the target "
                         "here (--kendall N, --scratch-cache) without the supernet")
    ap.add_argument("--compare", default=None, help="output dir of the baseline comparison (omit = skip)")
    ap.add_argument("--compare-seeds", default="0,1,2")
    ap.add_argument("--reference-accuracy", type=float, default=0.8)
    ap.add_argument("--run", default=None, help="a finished crossnas run dir whose winners to report")
    args = ap.parse_args()
    if args.merge:
        print(json.dumps(_merge(args.merge)))
        return
    if args.split is None:
        ap.error("--split is required")
    torch.set_num_threads(args.threads)

    from crossnas.config.run import load_run_config
    from crossnas.data import load_data
    from crossnas.train import load_supernet, train_supernet

    out: dict[str, Any] = {"dataset": "fashion_mnist", "split": args.split, "config": str(args.config),
                           "set": args.set}
    if args.scratch_only or args.inherited_from:
        cfg = load_run_config(args.config, _overrides(args.set)).supernet_config()
        data = load_data(cfg.data)
        previous = None
        if args.inherited_from:
            previous = json.loads(Path(args.inherited_from).read_text().strip().splitlines()[-1])
        out.update(_ranking(args, cfg, None, data, previous))
        print(json.dumps(out))
        return
    need_supernet = args.kendall > 0 or args.compare is not None
    with tempfile.TemporaryDirectory() as tmp:
        supernet_dir = Path(args.supernet) if args.supernet else Path(tmp) / "supernet"
        if need_supernet and args.supernet is None:
            cfg = load_run_config(args.config, _overrides(args.set)).supernet_config()
            t0 = time.perf_counter()
            train_supernet(cfg, supernet_dir, progress=False)
            out["supernet_train_s"] = round(time.perf_counter() - t0, 1)
        if need_supernet:
            run = load_supernet(supernet_dir)
            out["supernet_epochs"] = run.config.train.epochs
            if args.kendall:
                out.update(_ranking(args, run.config, run.net, load_data(run.config.data)))
            if args.compare is not None:
                out.update(_compare(args, supernet_dir))
    if args.run is not None:
        out["winners"] = json.loads((Path(args.run) / "summary.json").read_text())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
