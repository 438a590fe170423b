"""Accuracy evaluators: how a candidate's accuracy is scored.

An evaluator maps candidates to accuracies (fractions 0..1). ``hardware_dependent``
says whether the hardware genes matter: if not, the search reuses the accuracy of any
evaluated candidate with the same network and bits (the key's arch part).

Implementations: :class:`SupernetAccuracy` (weight-sharing subnet, fake quantization;
fast), :class:`PimAccuracy` (the extracted subnet through the crossbar simulator on a
validation subset), :class:`PimAwareAccuracy` (both: the supernet score for everyone,
:meth:`~PimAwareAccuracy.pim_scores` for the candidates the search asks for),
:class:`SyntheticAccuracy` (a cheap deterministic proxy for tests and benchmarks: no
training, no data; it also has ``pim_scores``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import statistics
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from crossnas.errors import CrossnasError
from crossnas.search.genome import Candidate
from crossnas.search.objectives import PimScore

logger = logging.getLogger(__name__)


@runtime_checkable
class Evaluator(Protocol):
    """Scores candidates' accuracy."""

    fidelity: str
    """``supernet``, ``pim`` or ``synthetic`` (stored with every trial)."""
    hardware_dependent: bool
    """Whether the hardware genes change the accuracy."""

    def evaluate(self, candidates: Sequence[Candidate]) -> list[float]:
        """Accuracy (fraction 0..1) of every candidate, same order."""
        ...


@runtime_checkable
class MultiFidelityEvaluator(Evaluator, Protocol):
    """An evaluator that can also give the expensive, hardware-aware score on request."""

    def pim_scores(self, candidates: Sequence[Candidate]) -> list[PimScore]:
        """PIM score of every candidate (on its own simulated chip), same order."""
        ...


class SyntheticAccuracy:
    """A deterministic, smooth accuracy proxy (no data, microseconds per candidate).

    Wider and deeper networks and more bits score higher, with saturation, plus a
    reproducible per-network jitter of ±``jitter``; epitome wraps (``e2``/``e4``) shrink a
    layer's capacity term by 15 % per doubling of the wrap; with ``hardware_dependent`` the ADC
    resolution and cell levels also matter (as a PIM simulation would). It has the
    trade-off shape that makes search meaningful (accuracy costs hardware) and nothing else.

    Args:
        seed: changes the jitter.
        jitter: half-width of the per-network jitter (fraction).
        hardware_dependent: let the ADC bits and device levels lower the accuracy.
        delay_s: seconds to wait per candidate (stands in for an expensive scorer).
    """

    def __init__(self, seed: int = 0, jitter: float = 0.02, hardware_dependent: bool = False,
                 delay_s: float = 0.0) -> None:
        self.seed = int(seed)
        self.delay_s = float(delay_s)
        self.jitter = float(jitter)
        self.hardware_dependent = bool(hardware_dependent)
        self.fidelity = "synthetic"
        self.n_calls = 0
        self.n_pim = 0

    def _one(self, c: Candidate) -> float:
        cap, bitfac, n = 0.0, 0.0, 0
        for layer in c.spec.layers:
            if layer.block == "skip":
                continue
            n += 1
            # an epitome wrapped m times stores ~1/m^2 of the weights: it loses some capacity
            # (EPIM: little at m = 2, more at m = 4), never more than the layer gave
            shrink = 1.0 - 0.15 * math.log2(layer.epitome)
            cap += shrink * math.log2(max(layer.width, 2) / 8.0) * (1.3 if layer.block == "residual" else 1.0)
            bits = min(layer.w_bits, layer.a_bits + 1)
            bitfac += 1.0 - 0.6 * 2.0 ** (-(bits - 3))
        bitfac /= max(n, 1)
        acc = 0.3 + 0.65 * (1.0 - math.exp(-cap / 7.0)) * bitfac
        digest = hashlib.sha256(f"{self.seed}:{c.spec}".encode()).digest()
        acc += self.jitter * (2.0 * int.from_bytes(digest[:4], "little") / 2**32 - 1.0)
        if self.hardware_dependent:
            adc_bits = c.hardware.adc.bits or 8
            acc *= 1.0 - 0.25 * 2.0 ** (-(adc_bits - 2)) - 0.01 * (c.hardware.device.cell_bits - 1)
        return float(min(max(acc, 0.0), 1.0))

    def evaluate(self, candidates: Sequence[Candidate]) -> list[float]:
        self.n_calls += 1
        if self.delay_s > 0:
            time.sleep(self.delay_s * len(candidates))  # stands in for an expensive scorer
        return [self._one(c) for c in candidates]

    def pim_scores(self, candidates: Sequence[Candidate]) -> list[PimScore]:
        """A hardware-dependent variant of the proxy (the multi-fidelity loop in tests):
        the ADC resolution and cell levels lower it, with a small per-chip spread."""
        self.n_pim += len(candidates)
        out = []
        for c in candidates:
            base = self._one(c)
            adc_bits = c.hardware.adc.bits or 8
            acc = base * (1.0 - 0.6 * 2.0 ** (-(adc_bits - 1)) - 0.01 * (c.hardware.device.cell_bits - 1))
            out.append(PimScore(float(min(max(acc, 0.0), 1.0)), 0.001, (acc - 0.001, acc + 0.001)))
        return out


class SupernetAccuracy:
    """Validation accuracy of the weight-sharing subnet (fake-quantized, BN re-estimated).

    Args:
        scorer: a :class:`crossnas.supernet.SubnetScorer` (``score_many(specs)``).
    """

    fidelity = "supernet"
    hardware_dependent = False

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def evaluate(self, candidates: Sequence[Candidate]) -> list[float]:
        return [float(a) for a in self.scorer.score_many([c.spec for c in candidates])]


class PimSimScorer:
    """PIM scores: a candidate's network on its own simulated crossbars (Monte-Carlo).

    The network is extracted from the supernet with its BatchNorm statistics re-estimated
    (``module_for(spec)``, cached for the last few networks, so hardware variants of one
    network share it), then :func:`crossnas.pimsim.pim_accuracy` runs it on ``(x, y)``
    with the candidate's hardware plus the scoring overrides (device variation, faults),
    ADC ranges calibrated on ``calibration_x`` (training images, never scored ones).

    Args:
        module_for: ``spec -> nn.Module`` (eval mode) of a network and its bits.
        x: validation inputs, shape ``(n, C, H, W)``; y: labels, shape ``(n,)``.
        calibration_x: ADC calibration inputs ``(m, C, H, W)`` (``None``: the first scored
            batch calibrates, as :func:`~crossnas.pimsim.pim_accuracy` does by default).
        mc_runs: Monte-Carlo chips per score.
        seed: seed of the chips.
        batch_size: simulation batch size.
        device: device fields simulated on top of each candidate's hardware.
        adc: ADC fields simulated on top.
        cache_size: extracted networks kept.
        screen: broken-chip screen: the first chip scores the first quarter of the images
            (at least 16) first; if the network keeps less than this fraction of its digital
            accuracy there, that is the score (the rest is not simulated). 0 = off.
    """

    def __init__(self, module_for: Any, x: Any, y: Any, *, calibration_x: Any = None, mc_runs: int = 2,
                 seed: int = 0, batch_size: int = 256, device: Mapping[str, Any] | None = None,
                 adc: Mapping[str, Any] | None = None, cache_size: int = 8, screen: float = 0.0) -> None:
        self.screen = float(screen)
        self.module_for = module_for
        self.x, self.y, self.calibration_x = x, y, calibration_x
        self.mc_runs, self.seed, self.batch_size = int(mc_runs), int(seed), int(batch_size)
        self.updates: dict[str, dict[str, Any]] = {}
        if device:
            self.updates["device"] = dict(device)
        if adc:
            self.updates["adc"] = dict(adc)
        self._modules: OrderedDict[str, Any] = OrderedDict()
        self.cache_size = int(cache_size)

    def _module(self, c: Candidate) -> Any:
        key = str(c.spec)
        if key in self._modules:
            self._modules.move_to_end(key)
        else:
            self._modules[key] = self.module_for(c.spec)
            while len(self._modules) > self.cache_size:
                self._modules.popitem(last=False)
        return self._modules[key]

    def hardware(self, c: Candidate) -> Any:
        """The simulated chip of ``c``: its hardware with the scoring overrides.

        The candidate's own device genes (``device.type``, ``device.levels``, ...) win over
        the overrides: a scoring override such as ``{variation_pct: 5}`` or ``{time_s:
        86400}`` is applied to the candidate's own cell technology and levels.
        """
        if not self.updates:
            return c.hardware
        hw = c.hardware.with_updates(**self.updates)
        own = {p: v for p, v in c.hw_genes if p.startswith("device.")}
        if own and "device" in self.updates:
            from crossnas.config.search import apply_hardware_genes

            hw = apply_hardware_genes(hw, own)
        return hw

    def score(self, c: Candidate) -> PimScore:
        """The PIM score of ``c``: exactly :func:`crossnas.pimsim.pim_accuracy`'s chips and
        images, with the broken-chip screen run on the first chip itself (no extra pass)."""
        import torch

        from crossnas.pimsim.settings import CrossbarSpec
        from crossnas.pimsim.simulate import run_seed, simulate_model

        t0 = time.perf_counter()
        module, hw = self._module(c), self.hardware(c)
        n = len(self.y)
        if n == 0:
            raise CrossnasError("PIM score: no validation images")

        def correct(model: Any, lo: int, hi: int) -> int:
            out = 0
            with torch.no_grad():
                for i in range(lo, hi, self.batch_size):
                    j = min(i + self.batch_size, hi)
                    out += int((model(self.x[i:j]).argmax(1) == self.y[i:j]).sum())
            return out

        was_training = module.training
        module.eval()
        try:
            digital = correct(module, 0, n)
            n0 = min(n, max(16, n // 4))
            chips = 1 if CrossbarSpec.from_hardware(hw).deterministic else self.mc_runs
            runs: list[float] = []
            for i in range(chips):
                sim = simulate_model(module, hw, seed=run_seed(self.seed, i), calibration=self.calibration_x)
                if i == 0 and self.screen > 0 and n0 < n:
                    first = correct(sim, 0, n0)
                    q0 = correct(module, 0, n0)
                    if first < self.screen * q0:  # a broken chip: this is its score
                        return PimScore(first / n0, 0.0, (first / n0,), time.perf_counter() - t0, n0, q0 / n0)
                    runs.append((first + correct(sim, n0, n)) / n)
                else:
                    runs.append(correct(sim, 0, n) / n)
        finally:
            module.train(was_training)
        runs = runs * (self.mc_runs // len(runs)) if len(runs) == 1 else runs
        mean = runs[0] if len(set(runs)) == 1 else sum(runs) / len(runs)
        std = 0.0 if len(runs) < 2 or len(set(runs)) == 1 else statistics.stdev(runs)
        return PimScore(float(mean), float(std), tuple(runs), time.perf_counter() - t0, n, digital / n)


class PimAccuracy:
    """Every candidate's accuracy through the crossbar simulator (fidelity ``pim``).

    Args:
        sim: the :class:`PimSimScorer`.
    """

    fidelity = "pim"
    hardware_dependent = True

    def __init__(self, sim: PimSimScorer) -> None:
        self.sim = sim

    def evaluate(self, candidates: Sequence[Candidate]) -> list[float]:
        return [self.sim.score(c).mean for c in candidates]


class PimAwareAccuracy:
    """Multi-fidelity scoring (fidelity ``pim_aware``): the supernet score for every
    candidate, PIM scores for the few the search asks for (:meth:`pim_scores`).

    Args:
        scorer: a :class:`crossnas.supernet.SubnetScorer` (``score_many(specs)``).
        sim: the :class:`PimSimScorer`.
    """

    fidelity = "supernet"
    """The fidelity of :meth:`evaluate` (stored with every cheap score)."""
    hardware_dependent = False

    def __init__(self, scorer: Any, sim: PimSimScorer) -> None:
        self.scorer, self.sim = scorer, sim

    def evaluate(self, candidates: Sequence[Candidate]) -> list[float]:
        return [float(a) for a in self.scorer.score_many([c.spec for c in candidates])]

    def pim_scores(self, candidates: Sequence[Candidate]) -> list[PimScore]:
        return [self.sim.score(c) for c in candidates]
