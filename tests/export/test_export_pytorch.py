"""Standalone PyTorch export: imports only torch and reproduces crossnas's outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.export.pytorch import export_pytorch
from crossnas.space import ArchSpec
from crossnas.supernet import build_static
from crossnas.supernet.modeldir import save_model_dir

_RUNNER = """
import sys, torch
sys.modules["crossnas"] = None  # the export must not need crossnas
sys.path.insert(0, sys.argv[1])
import model
net = model.build()
net.load_state_dict(torch.load(sys.argv[1] + "/weights.pt", weights_only=True))
x = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    torch.save(net(x), sys.argv[3])
"""


@pytest.mark.parametrize(("arch", "quantize"), [("V8w5a7-S-R16w7a5", True), ("R8w5a5-v16w7a7-S", True),
                                                ("v8w5a5-R8w5a5-V16w5a5", False)])
def test_exported_module_matches(tmp_path: Path, arch: str, quantize: bool) -> None:
    space = SpaceConfig(n_layers=3, widths=(8, 16), w_bits=(5, 7), a_bits=(5, 7), quantize=quantize,
                        head={"fc": (12,)})
    spec = ArchSpec.from_string(arch)
    torch.manual_seed(0)
    net = build_static(spec, space, (1, 8, 8), 10)
    net.train()
    for _ in range(3):  # calibrate clips and BN statistics so they are not defaults
        net(torch.randn(16, 1, 8, 8))
    net.eval()
    save_model_dir(tmp_path / "m", net, spec=spec, space=space, input_shape=(1, 8, 8), n_classes=10,
                   data_cfg=DataConfig(), hardware=HardwareConfig())
    export_pytorch(tmp_path / "m", tmp_path / "e")
    x = torch.randn(5, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", _RUNNER, str(tmp_path / "e"), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, capture_output=True, timeout=120)
    with torch.no_grad():
        expected = net(x)
    assert torch.allclose(torch.load(tmp_path / "y.pt", weights_only=True), expected, atol=1e-6)


def test_onnx_export_is_a_valid_model(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from crossnas.export.run import export_model

    space = SpaceConfig(n_layers=2, widths=(8,), w_bits=(5,), a_bits=(5,), head={"fc": (12,)})
    spec = ArchSpec.from_string("V8w5a5-R8w5a5")
    net = build_static(spec, space, (1, 8, 8), 10).eval()
    save_model_dir(tmp_path / "m", net, spec=spec, space=space, input_shape=(1, 8, 8), n_classes=10,
                   data_cfg=DataConfig(), hardware=HardwareConfig())
    [path] = export_model(tmp_path / "m", tmp_path / "o", "onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"]
