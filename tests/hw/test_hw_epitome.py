"""Epitome layers (EPIM) in the cost model: only the epitome is stored on the crossbars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossnas.cli.main import main
from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.hw import cost_network, network_from_dict


def _net(wrap: dict | None, widths: tuple[int, ...] = (128, 256, 256, 256)) -> dict:
    layers, cin = [], 3
    for i, w in enumerate(widths):
        conv = {"type": "conv", "in_channels": cin, "out_channels": w, "kernel_size": 3, "padding": 1}
        if wrap and i > 0:
            conv["epitome"] = wrap
        layers += [conv, {"type": "relu"}]
        cin = w
    layers += [{"type": "pooling", "mode": "MAX", "kernel_size": 4, "stride": 4}, {"type": "view"},
               {"type": "fc", "in_features": cin * 16, "out_features": 10}]
    return {"input_shape": [3, 16, 16], "layers": layers}


def _xbars(rep: dict) -> list[int]:
    return [ly["crossbars"] for ly in rep["layers"] if ly["type"] == "conv"]


@pytest.mark.parametrize("mode", ["mnsim", "corrected"])
def test_wrapped_layers_need_a_fraction_of_the_crossbars(mode: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """The issue's check: out_wrap = in_wrap = 2 on the last three convs needs <= 1/3.5 of the
    crossbars of the dense twin in those layers (``crossnas hw NET.json --json``)."""
    out = {}
    for name, wrap in (("dense", None), ("epitome", {"out_wrap": 2, "in_wrap": 2})):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(_net(wrap)))
        assert main(["hw", str(f), "--json", "--set", "crossbar.rows=128", "--set", "crossbar.cols=128",
                     "--set", f"cost_mode={mode}"]) == 0
        out[name] = json.loads(capsys.readouterr().out)
    dense, epi = _xbars(out["dense"]), _xbars(out["epitome"])
    assert epi[0] == dense[0]
    assert sum(epi[1:]) * 3.5 <= sum(dense[1:])
    assert out["epitome"]["crossbars"] < out["dense"]["crossbars"]
    assert out["epitome"]["area_mm2"] < out["dense"]["area_mm2"]


def test_output_wrap_reads_once_input_wrap_datapaths_differ() -> None:
    """Output wrapping reuses a column for several logical channels (no extra reads); input
    wrapping either sums the chunks before the DAC (one more input bit per doubling) or reads
    the crossbar once per chunk (twice the conversions for in_wrap = 2)."""
    hw = HardwareConfig.model_validate({"cost_mode": "corrected", "crossbar": {"rows": 128, "cols": 128},
                                        "dac": {"choice": 1}})
    react = hw.with_updates(epitome={"datapath": "reactivate"})

    def adc(net: dict, h: HardwareConfig) -> float:
        return cost_network(network_from_dict(net), h)["layers"][2]["energy_mJ"]

    dense = adc(_net(None), hw)
    out2 = adc(_net({"out_wrap": 2}), hw)
    assert out2 < 0.6 * dense  # half the columns converted
    s = cost_network(network_from_dict(_net({"in_wrap": 2})), hw)
    r = cost_network(network_from_dict(_net({"in_wrap": 2})), react)
    assert r["layers"][2]["energy_mJ"] > s["layers"][2]["energy_mJ"]  # 2 x 9 reads vs 10 summed-input cycles
    assert r["layers"][2]["crossbars"] == s["layers"][2]["crossbars"]  # the same stored epitome


@pytest.mark.parametrize(("wrap", "needle"), [({"out_wrap": 0}, "out_wrap"), ({"in_wrap": 999}, "in_wrap"),
                                              ({"m": 2}, "epitome"), (2, "epitome")])
def test_bad_epitome_is_one_line(wrap: object, needle: str) -> None:
    net = _net(None)
    net["layers"][2]["epitome"] = wrap
    with pytest.raises(CrossnasError) as exc:
        network_from_dict(net)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_traced_epitome_conv_keeps_its_wraps() -> None:
    """``network_from_module`` costs an EpitomeConv2d as the epitome it stores, not as a dense conv."""
    import torch
    from torch import nn

    from crossnas.hw import network_from_module
    from crossnas.quant.epitome import EpitomeConv2d

    def build(m: int) -> nn.Module:
        return nn.Sequential(EpitomeConv2d(3, 64, 3, padding=1, w_bits=5, a_bits=5),
                             EpitomeConv2d(64, 64, 3, padding=1, out_wrap=m, in_wrap=m, w_bits=5, a_bits=5))

    x = torch.zeros(1, 3, 8, 8)
    dense, epi = (network_from_module(build(m), x) for m in (1, 4))
    assert (epi.layers[1].out_wrap, epi.layers[1].in_wrap) == (4, 4)
    hw = HardwareConfig.model_validate({"crossbar": {"rows": 32, "cols": 32}})
    assert cost_network(epi, hw)["layers"][1]["crossbars"] < cost_network(dense, hw)["layers"][1]["crossbars"]
