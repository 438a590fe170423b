"""PIM-aware (multi-fidelity) search: PIM scores for the candidates that can win, stored,
replayed on resume, used by selection, fronts, winners and fitness; blind configs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from crossnas.config.hardware import HardwareConfig
from crossnas.config.search import SearchConfig, accuracy_genes
from crossnas.config.space import SpaceConfig
from crossnas.search import SearchProblem, SyntheticAccuracy, run_search
from crossnas.search.objectives import Ranges, paper_fitness
from crossnas.search.pareto import pareto_mask

SEARCH = {"evolution": {"population": 12, "top_k": 4, "n_mutations": 6, "n_crossovers": 6, "generations": 4},
          "normalization": {"samples": 40},
          "hardware_genes": {"crossbar.size": [32, 64, 128, 256], "adc.choice": [1, 2, 3, 4, 5, 6, 7, 8],
                             "dac.choice": [1, 2]},
          "accuracy": {"fidelity": "synthetic", "synthetic_pim_aware": True, "top_k": 2}}


def problem(**over: object) -> SearchProblem:
    cfg = SearchConfig.model_validate({**SEARCH, **over})
    return SearchProblem(cfg, SpaceConfig(), HardwareConfig(), (1, 8, 8), 10)


class CrashingPim(SyntheticAccuracy):
    """Synthetic accuracy whose PIM scorer dies after ``n`` scores (a worker killed mid-phase)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def pim_scores(self, candidates):  # type: ignore[no-untyped-def]
        if self.left <= 0:
            raise RuntimeError("simulated crash")
        self.left -= len(candidates)
        return super().pim_scores(candidates)


def _strip_trials(doc: object) -> object:
    """The document without trial numbers (a crash leaves failed trials that shift them)."""
    if isinstance(doc, dict):
        return {k: _strip_trials(v) for k, v in doc.items() if k != "trial"}
    if isinstance(doc, (list, tuple)):
        return [_strip_trials(v) for v in doc]
    return doc


def _files(run: Path) -> tuple[dict, dict]:
    return json.loads((run / "best.json").read_text()), json.loads((run / "pareto.json").read_text())


def test_winners_and_front_carry_pim_scores_and_beat_every_optimistic_score(tmp_path: Path) -> None:
    res = run_search(problem(), SyntheticAccuracy, tmp_path)
    best, pareto = _files(tmp_path)
    assert res.summary["pim_scores"] > 0
    ranges = Ranges({k: tuple(v) for k, v in best["normalization"]["ranges"].items()})
    evs = list(res.results.values())
    for w in best["winners"]:
        assert w["accuracy_source"] == "pim"
        m = w["metrics"]
        assert m["accuracy"] == m["pim_accuracy_mean"] != m["supernet_accuracy"]
        # the winner's PIM-based fitness beats every candidate's fitness, the unscored ones
        # counted at their (optimistic) supernet score: the lazy top-k is exact
        top = max(paper_fitness(e, w["w_acc"], ranges) for e in evs)
        assert w["fitness"] == pytest.approx(top)
    assert pareto["front"] and all(e["accuracy_source"] == "pim" for e in pareto["front"])
    # the front is the front of the merged accuracies
    import numpy as np

    pts = np.array([[-e.accuracy, e.cost.edp_mJms] for e in evs])
    on_front = {e.key for e, m in zip(evs, pareto_mask(pts), strict=True) if m}
    assert on_front == {e["key"] for e in pareto["front"]}


def test_pim_scores_change_the_choice(tmp_path: Path) -> None:
    """The proxy's PIM score punishes low-resolution ADCs; a PIM-aware winner avoids them,
    while the hardware-blind search (same proxy without PIM scores) takes the cheap ADC."""
    aware = run_search(problem(), SyntheticAccuracy, tmp_path / "aware")
    blind = run_search(problem(accuracy={"fidelity": "synthetic"}), SyntheticAccuracy, tmp_path / "blind")
    bits = {1: 10, 2: 10, 3: 8, 4: 8, 5: 8, 6: 6, 7: 4, 8: 1}  # MNSIM's ADC table
    aware_bits = [bits[w["hardware_genes"]["adc.choice"]] for w in aware.best["winners"]]
    blind_bits = [bits[w["hardware_genes"]["adc.choice"]] for w in blind.best["winners"]]
    assert min(aware_bits) >= 6
    assert min(blind_bits) < min(aware_bits)


def test_crash_in_the_pim_phase_then_resume_gives_the_same_search(tmp_path: Path) -> None:
    ref = run_search(problem(), SyntheticAccuracy, tmp_path / "ref")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_search(problem(), lambda: CrashingPim(5), tmp_path / "x")
    res = run_search(problem(), SyntheticAccuracy, tmp_path / "x")
    assert res.summary["pim_scores"] == ref.summary["pim_scores"]
    assert set(res.results) == set(ref.results)
    assert _strip_trials(_files(tmp_path / "x")) == _strip_trials(_files(tmp_path / "ref"))
    # nothing was scored twice
    search = json.loads((tmp_path / "x" / "search.json").read_text())
    assert search["trials"]["complete"] == len(res.results) + res.summary["pim_scores"]


def test_pim_scores_are_reused_on_rerun(tmp_path: Path) -> None:
    run_search(problem(), SyntheticAccuracy, tmp_path)
    again = SyntheticAccuracy()
    res = run_search(problem(), lambda: again, tmp_path)
    assert again.n_pim == 0 and again.n_calls == 0 and res.summary["evaluated_here"] == 0


def test_ranges_cover_every_evaluated_candidate(tmp_path: Path) -> None:
    res = run_search(problem(normalization={"samples": 2}), SyntheticAccuracy, tmp_path)
    best, _ = _files(tmp_path)
    norm = best["normalization"]
    assert norm["widened"]  # two samples cannot span the space
    for m in ("latency_ms", "energy_mJ"):
        lo = norm["ranges"][m][0]
        assert min(getattr(e.cost, m) for e in res.results.values()) == pytest.approx(lo)


def test_supernet_fidelity_refuses_accuracy_genes() -> None:
    with pytest.raises(ValidationError, match=r"hardware_genes\.crossbar\.size.*pim_aware.*allow_blind_hardware"):
        SearchConfig.model_validate({"accuracy": {"fidelity": "supernet"}})
    ok = SearchConfig.model_validate({"accuracy": {"fidelity": "supernet", "allow_blind_hardware": True}})
    assert ok.accuracy.allow_blind_hardware
    # genes that only change the cost are fine
    SearchConfig.model_validate({"accuracy": {"fidelity": "supernet"}, "hardware_genes": {"tile.pe_rows": [2, 4]}})
    assert accuracy_genes(["crossbar.size", "adc.choice", "dac.bits", "device.levels", "tile.pe_rows"]) == [
        "crossbar.size", "adc.choice", "dac.bits", "device.levels"]


def test_pim_scoring_overrides_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown device field 'variance'"):
        SearchConfig.model_validate({"accuracy": {"device": {"variance": 5}}})
    cfg = SearchConfig.model_validate({"accuracy": {"device": {"variation_pct": 5}}})
    assert cfg.accuracy.device == {"variation_pct": 5} and cfg.accuracy.multi_fidelity


def _tiny_scorer(screen: float, variation: float):  # type: ignore[no-untyped-def]
    import torch

    from crossnas.search.evaluators import PimSimScorer
    from crossnas.search.genome import Candidate
    from crossnas.space import ArchSpec
    from crossnas.supernet import build_static

    space = SpaceConfig.model_validate({"n_layers": 2, "widths": [8, 16], "w_bits": [5, 7], "a_bits": [5, 7],
                                        "head": {"fc": [16]}})
    spec = ArchSpec.from_string("V16w5a5-R8w7a7")
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = build_static(spec, space, (1, 8, 8), 10)
    with torch.no_grad():  # a few training-mode passes set BN statistics, then eval
        for _ in range(3):
            net(torch.rand(32, 1, 8, 8, generator=g))
    net.eval()
    x, y = torch.rand(48, 1, 8, 8, generator=g), torch.randint(0, 10, (48,), generator=g)
    with torch.no_grad():
        y = torch.where(torch.rand(48, generator=g) < 0.7, net(x).argmax(1), y)  # mostly "right" labels
    cal = torch.rand(16, 1, 8, 8, generator=g)
    hw = HardwareConfig().with_updates(device={"variation_pct": variation})
    cand = Candidate("k", spec, hw, ())
    sim = PimSimScorer(lambda s: net, x, y, calibration_x=cal, mc_runs=3, seed=4, batch_size=20, screen=screen)
    return sim, cand, net, x, y, cal, hw


def test_pim_score_is_the_simulators_and_the_screen_stops_broken_chips() -> None:
    from crossnas.pimsim import pim_accuracy

    sim, cand, net, x, y, cal, hw = _tiny_scorer(screen=0.5, variation=10.0)
    score = sim.score(cand)
    ref = pim_accuracy(net, hw, x, y, mc_runs=3, seed=4, batch_size=20, calibration_x=cal)
    assert score.images == 48 and score.mean == pytest.approx(ref.mean) and score.std == pytest.approx(ref.std)
    assert list(score.runs) == pytest.approx(ref.runs) and score.quantized == pytest.approx(ref.quantized_accuracy)
    # a screen nothing passes: one chip on the first quarter (16 images) is the score
    sim.screen = 1.0 + 1e-9
    broken = sim.score(cand)
    first = pim_accuracy(net, hw, x[:16], y[:16], mc_runs=1, seed=4, batch_size=20, calibration_x=cal)
    assert broken.images == 16 and broken.mean == pytest.approx(first.mean) and broken.std == 0.0
    # a chip without random non-idealities is simulated once
    sim2, cand2, *_ = _tiny_scorer(screen=0.0, variation=0.0)
    s2 = sim2.score(cand2)
    assert s2.std == 0.0 and len(set(s2.runs)) == 1 and len(s2.runs) == 3


def test_device_type_and_levels_are_accuracy_genes_and_the_type_is_applied_first() -> None:
    from crossnas.config.search import apply_hardware_genes

    with pytest.raises(ValidationError, match=r"hardware_genes\.device\.type"):
        SearchConfig.model_validate({"accuracy": {"fidelity": "supernet"},
                                     "hardware_genes": {"device.type": ["RRAM", "PCM"]}})
    assert accuracy_genes(["device.type", "device.levels", "device.time_s", "device.read_noise_pct",
                           "crossbar.subarray_rows", "device.cell_area_um2"]) == [
        "device.type", "device.levels", "device.time_s", "device.read_noise_pct", "crossbar.subarray_rows"]
    cfg = SearchConfig.model_validate({"hardware_genes": {"device.levels": [2, 4], "device.type": ["RRAM", "PCM"]},
                                       "accuracy": {"device": {"time_s": 86400}}})
    assert cfg.accuracy.device == {"time_s": 86400}
    # whatever the order of the genes, the type's preset never overrides the levels gene
    for genes in ({"device.levels": 2, "device.type": "PCM"}, {"device.type": "PCM", "device.levels": 2}):
        hw = apply_hardware_genes(HardwareConfig(), genes)
        assert hw.device.type == "PCM" and hw.device.levels == 2 and hw.device.noise_model == "pcm"


def test_pim_scorer_simulates_the_candidates_own_device() -> None:
    from crossnas.config.search import apply_hardware_genes
    from crossnas.search.evaluators import PimSimScorer
    from crossnas.search.genome import Candidate
    from crossnas.space import ArchSpec

    genes = (("device.type", "PCM"), ("device.levels", 8))
    hw = apply_hardware_genes(HardwareConfig(), dict(genes))
    cand = Candidate("k", ArchSpec.from_string("V16w5a5-R8w7a7"), hw, genes)
    sim = PimSimScorer(None, None, None, device={"variation_pct": 2.0, "levels": 2, "time_s": 86400})
    chip = sim.hardware(cand)
    assert (chip.device.type, chip.device.levels, chip.device.noise_model) == ("PCM", 8, "pcm")
    assert chip.device.variation_pct == 2.0 and chip.device.time_s == 86400
    rram = Candidate("r", cand.spec, HardwareConfig(), ())
    assert sim.hardware(rram).device.levels == 2 and sim.hardware(rram).device.type == "RRAM"
