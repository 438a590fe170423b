"""Standalone PyTorch and ONNX exports: import only torch (or run as an ONNX graph), take raw
images, apply the training normalisation themselves, and reproduce crossnas's outputs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from crossnas.cli.main import main
from crossnas.config.data import DataConfig
from crossnas.config.hardware import HardwareConfig
from crossnas.config.space import SpaceConfig
from crossnas.data import load_data
from crossnas.export.pytorch import export_pytorch
from crossnas.export.run import export_model
from crossnas.space import ArchSpec
from crossnas.supernet import build_static
from crossnas.supernet.modeldir import save_model_dir

_RUNNER = """
import sys, torch
sys.modules["crossnas"] = None  # the export must not need crossnas
sys.path.insert(0, sys.argv[1])
import model
weights = torch.load(sys.argv[1] + "/weights.pt", weights_only=True)
x_raw, x_norm = torch.load(sys.argv[2], weights_only=True)
out = {}
with torch.no_grad():
    net = model.build()
    net.load_state_dict(weights)
    out["default_raw"] = net(x_raw)
    net.normalize_input = False
    out["attr_off_norm"] = net(x_norm)
    net = model.build(normalize_input=False)
    net.load_state_dict(weights)
    out["built_off_norm"] = net(x_norm)
    net = model.build(normalize_input=True)
    net.load_state_dict(weights)
    out["built_on_raw"] = net(x_raw)
out["mean"], out["std"] = model.CONFIG["normalization"]["mean"], model.CONFIG["normalization"]["std"]
torch.save(out, sys.argv[3])
"""

DIGITS = DataConfig()


@lru_cache(maxsize=1)
def _digits_norm() -> tuple[float, float]:
    """Independent of the export code: the loader's normalised training split has mean 0 and
    std 1, and its raw images are pixel / 16, so mean/std follow from scikit-learn's data."""
    from sklearn.datasets import load_digits

    b = load_data(DIGITS)
    raw = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)
    # each normalised pixel z is (r - mean) / std for raw r in {0, 1/16, .., 1}: the
    # smallest normalised value is the raw 0 (every split has black pixels)
    assert float(raw.min()) == 0.0
    zmin = float(b.train_x.min())
    zs = torch.unique(b.train_x)
    step = float(zs[1] - zs[0])  # one raw step of 1/16
    std = (1 / 16) / step
    return -zmin * std, std


def _model(tmp_path: Path, arch: str, quantize: bool, data: DataConfig = DIGITS, seed: int = 0) -> tuple:
    space = SpaceConfig(n_layers=3, widths=(8, 16), w_bits=(5, 7), a_bits=(5, 7), quantize=quantize,
                        head={"fc": (12,)})
    spec = ArchSpec.from_string(arch)
    torch.manual_seed(seed)
    net = build_static(spec, space, (1, 8, 8), 10)
    net.train()
    for _ in range(3):  # calibrate clips and BN statistics so they are not defaults
        net(torch.randn(16, 1, 8, 8))
    net.eval()
    save_model_dir(tmp_path / "m", net, spec=spec, space=space, input_shape=(1, 8, 8), n_classes=10,
                   data_cfg=data, hardware=HardwareConfig())
    return net, tmp_path / "m"


def _load_standalone(export_dir: Path, normalize_input: bool | None = None) -> torch.nn.Module:
    """The exported ``model.py`` imported in this process (the subprocess runs prove it needs no crossnas)."""
    spec = importlib.util.spec_from_file_location(f"exported_{abs(hash(str(export_dir)))}", export_dir / "model.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.build() if normalize_input is None else mod.build(normalize_input=normalize_input)
    net.load_state_dict(torch.load(export_dir / "weights.pt", weights_only=True))
    return net


def _run_standalone(tmp_path: Path, export_dir: Path, x_raw: torch.Tensor, x_norm: torch.Tensor) -> dict:
    """Runs the export in a fresh interpreter where importing crossnas fails."""
    torch.save((x_raw, x_norm), tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", _RUNNER, str(export_dir), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, capture_output=True, timeout=120)
    return torch.load(tmp_path / "y.pt", weights_only=True)


@pytest.mark.parametrize(("arch", "quantize"), [("V8w5a7-S-R16w7a5", True), ("R8w5a5-v16w7a7-S", True),
                                                ("v8w5a5-R8w5a5-V16w5a5", False)])
def test_exported_module_takes_raw_images(tmp_path: Path, arch: str, quantize: bool) -> None:
    net, mdir = _model(tmp_path, arch, quantize)
    export_pytorch(mdir, tmp_path / "e")
    mean, std = _digits_norm()
    x_raw = torch.randint(0, 17, (5, 1, 8, 8)).float() / 16  # raw digits scale: pixel / 16
    x_norm = (x_raw - mean) / std
    out = _run_standalone(tmp_path, tmp_path / "e", x_raw, x_norm)
    assert out["mean"] == pytest.approx([mean], rel=1e-5) and out["std"] == pytest.approx([std], rel=1e-5)
    with torch.no_grad():
        expected = net(x_norm)
        unnormalised = net(x_raw)
    for key in ("default_raw", "built_on_raw", "attr_off_norm", "built_off_norm"):
        assert torch.allclose(out[key], expected, atol=1e-5), key
    assert not torch.allclose(out["default_raw"], unnormalised, atol=1e-2)  # normalisation matters here


def test_export_for_normalised_inputs(tmp_path: Path) -> None:
    net, mdir = _model(tmp_path, "V8w5a7-S-R16w7a5", True)
    export_model(mdir, tmp_path / "e", "pytorch", normalize_input=False)
    mean, std = _digits_norm()
    x_raw = torch.randint(0, 17, (4, 1, 8, 8)).float() / 16
    x_norm = (x_raw - mean) / std
    with torch.no_grad():
        expected = net(x_norm)
        assert torch.allclose(_load_standalone(tmp_path / "e")(x_norm), expected, atol=1e-5)  # the default now
        assert torch.allclose(_load_standalone(tmp_path / "e", normalize_input=True)(x_raw), expected, atol=1e-5)


def test_exported_module_on_raw_digits_equals_crossnas_on_the_loader(tmp_path: Path) -> None:
    """End to end: scikit-learn's digit images / 16 through the export give crossnas's
    outputs on the loader's (normalised) test images."""
    from sklearn.datasets import load_digits

    net, mdir = _model(tmp_path, "V8w5a7-S-R16w7a5", True)
    export_pytorch(mdir, tmp_path / "e")
    bundle = load_data(DIGITS)
    mean, std = _digits_norm()
    raw_all = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]
    z = bundle.test_x[:24]
    # find each test image's raw original (exact: raw pixels are multiples of 1/16)
    guess = torch.round((z * std + mean) * 16) / 16
    idx = [int(torch.nonzero((raw_all == g).flatten(1).all(1))[0]) for g in guess]
    x_raw = raw_all[idx]
    with torch.no_grad():
        expected = net(z)
        got = _load_standalone(tmp_path / "e")(x_raw)
    assert torch.allclose(got, expected, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def _onnx_run(path: Path, x: torch.Tensor) -> np.ndarray:
    """Runs the ONNX graph: onnxruntime when installed, else onnx's reference evaluator."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return np.asarray(ReferenceEvaluator(str(path)).run(None, {"image": x.numpy()})[0])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"image": x.numpy()})[0])


@pytest.mark.parametrize("quantize", [True, False])
def test_onnx_export_computes_the_pytorch_outputs_on_raw_images(tmp_path: Path, quantize: bool) -> None:
    onnx = pytest.importorskip("onnx")
    net, mdir = _model(tmp_path, "V8w5a7-S-R16w7a5", quantize)
    [path] = export_model(mdir, tmp_path / "o", "onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"]
    assert "raw images" in {p.key: p.value for p in model.metadata_props}["input"]
    export_pytorch(mdir, tmp_path / "e")
    mean, std = _digits_norm()
    x_raw = torch.randint(0, 17, (6, 1, 8, 8)).float() / 16
    y_onnx = _onnx_run(path, x_raw)
    with torch.no_grad():
        standalone = _load_standalone(tmp_path / "e")(x_raw)
        expected = net((x_raw - mean) / std).numpy()
    assert y_onnx.shape == (6, 10)
    assert np.allclose(y_onnx, standalone.numpy(), atol=1e-4)
    assert np.allclose(y_onnx, expected, atol=1e-4)
    # and for inputs already normalised
    [path2] = export_model(mdir, tmp_path / "o2", "onnx", normalize_input=False)
    assert np.allclose(_onnx_run(path2, (x_raw - mean) / std), expected, atol=1e-4)


def test_export_cli_normalized_input_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, mdir = _model(tmp_path, "V8w5a7-S-R16w7a5", True)
    assert main(["export", str(mdir), "--format", "pytorch", "-o", str(tmp_path / "raw")]) == 0
    assert main(["export", str(mdir), "--format", "pytorch", "--normalized-input", "-o", str(tmp_path / "n")]) == 0
    assert "def build(normalize_input=True)" in (tmp_path / "raw" / "model.py").read_text()
    assert "def build(normalize_input=False)" in (tmp_path / "n" / "model.py").read_text()
    capsys.readouterr()
    assert main(["export", str(mdir), "--format", "mnsim", "--normalized-input", "-o", str(tmp_path / "mn")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "mnsim" in err[0]
    assert not (tmp_path / "mn").exists()
