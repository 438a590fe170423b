"""Exports of epitome models: the standalone PyTorch module runs the chunk-sum form on the
stored epitomes; MNSIM gets the equivalent dense layers and a note."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.export.pytorch import export_pytorch
from crossnas.export.run import export_model
from crossnas.hw import network_from_dict
from crossnas.space import ArchSpec
from crossnas.supernet import build_static
from crossnas.supernet.modeldir import save_model_dir

SPACE = SpaceConfig(n_layers=3, widths=(6, 16), w_bits=(5, 7), a_bits=(5, 7), epitome=(1, 2, 4), head={"fc": (12,)})
ARCH = "R6w5a7e4-v16w7a5e2-V16w5a5"

_RUNNER = """
import sys, torch
sys.modules["crossnas"] = None  # the export must not need crossnas
sys.path.insert(0, sys.argv[1])
import model
net = model.build(normalize_input=False)
net.load_state_dict(torch.load(sys.argv[1] + "/weights.pt", weights_only=True))
with torch.no_grad():
    torch.save(net(torch.load(sys.argv[2], weights_only=True)), sys.argv[3])
"""


def _model(tmp_path: Path, arch: str = ARCH, space: SpaceConfig = SPACE) -> tuple[torch.nn.Module, Path]:
    spec = ArchSpec.from_string(arch)
    torch.manual_seed(0)
    net = build_static(spec, space, (1, 8, 8), 10)
    net.train()
    for _ in range(3):
        net(torch.randn(16, 1, 8, 8))
    net.eval()
    save_model_dir(tmp_path / "m", net, spec=spec, space=space, input_shape=(1, 8, 8), n_classes=10,
                   data_cfg=DataConfig(), hardware=HardwareConfig())
    return net, tmp_path / "m"


@pytest.mark.parametrize("capped", [False, True])
def test_standalone_pytorch_export_runs_the_epitomes(tmp_path: Path, capped: bool) -> None:
    if capped:  # output wraps capped at 2 (space.epitome_out_max): e4o2 blocks
        space = SPACE.model_copy(update={"epitome_out_max": 2})
        net, mdir = _model(tmp_path, "R6w5a7e4o2-v16w7a5e4o2-V16w5a5", space)
        wraps = ({"conv1": [2, 1], "conv2": [2, 4], "shortcut": [2, 1]}, {"conv1": [2, 4], "conv2": [2, 4]})
        shape = (8, 4, 3, 3)
    else:
        net, mdir = _model(tmp_path)
        wraps = ({"conv1": [4, 1], "conv2": [4, 4], "shortcut": [4, 1]}, {"conv1": [2, 2], "conv2": [2, 2]})
        shape = (8, 8, 3, 3)
    export_pytorch(mdir, tmp_path / "e", normalize_input=False)
    cfg = json.loads((tmp_path / "e" / "model.json").read_text())
    assert (cfg["blocks"][0]["epitome"], cfg["blocks"][1]["epitome"]) == wraps
    assert "epitome" not in cfg["blocks"][2]
    weights = torch.load(tmp_path / "e" / "weights.pt", weights_only=True)
    assert weights["features.1.conv2.weight"].shape == shape  # the stored epitome, not the 16 x 16 kernel
    x = torch.randn(7, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", _RUNNER, str(tmp_path / "e"), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, capture_output=True, timeout=120)
    with torch.no_grad():
        expected = net(x)
    assert torch.allclose(torch.load(tmp_path / "y.pt", weights_only=True), expected, atol=1e-5)


def test_mnsim_export_writes_dense_layers_and_a_note(tmp_path: Path) -> None:
    _, mdir = _model(tmp_path)
    files = export_model(mdir, tmp_path / "x", "mnsim")
    assert [f.name for f in files] == ["network.json", "SimConfig.ini", "EPITOME_NOTE.txt"]
    net = json.loads((tmp_path / "x" / "network.json").read_text())
    assert not any("epitome" in layer for layer in net["layers"])
    dense = network_from_dict({"input_shape": net["input_shape"], "layers": net["layers"]})
    assert [(ly.out_wrap, ly.in_wrap) for ly in dense.layers if ly.type == "conv"] == [(1, 1)] * 7
    note = (tmp_path / "x" / "EPITOME_NOTE.txt").read_text()
    assert "MNSIM has no epitome layers" in note and "layers[0] (out_wrap 4, in_wrap 1)" in note
    # a dense model gets no note
    spec = ArchSpec.from_string("R6w5a7-v16w7a5-V16w5a5")
    save_model_dir(tmp_path / "d", build_static(spec, SPACE, (1, 8, 8), 10).eval(), spec=spec, space=SPACE,
                   input_shape=(1, 8, 8), n_classes=10, data_cfg=DataConfig(), hardware=HardwareConfig())
    assert [f.name for f in export_model(tmp_path / "d", tmp_path / "y", "mnsim")] == ["network.json", "SimConfig.ini"]
