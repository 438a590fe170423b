"""``crossnas export``: one entry point for the three formats."""

from __future__ import annotations

from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.utils.io import write_json, write_text


def export_model(model_dir: Path, out: Path, fmt: str) -> list[Path]:
    """Exports a model directory; returns the written files."""
    from crossnas.supernet.modeldir import load_model_dir

    if fmt == "pytorch":
        from crossnas.export.pytorch import export_pytorch

        return list(export_pytorch(model_dir, out).values())
    loaded = load_model_dir(model_dir)
    if fmt == "mnsim":
        from crossnas.export.mnsim import hardware_to_mnsim_ini, network_to_mnsim
        from crossnas.space import arch_to_network_dict

        net = arch_to_network_dict(loaded.spec, loaded.space, tuple(loaded.input_shape), loaded.n_classes)
        write_json(out / "network.json", network_to_mnsim(net))
        write_text(out / "SimConfig.ini", hardware_to_mnsim_ini(loaded.hardware))
        return [out / "network.json", out / "SimConfig.ini"]
    if fmt == "onnx":
        return [_export_onnx(loaded, out / "model.onnx")]
    raise CrossnasError(f"--format {fmt!r}: allowed: pytorch, onnx, mnsim")


def _export_onnx(loaded: object, dest: Path) -> Path:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise CrossnasError("--format onnx needs the onnx package: pip install 'crossnas[onnx]'") from exc
    import io

    import torch

    from crossnas.utils.io import write_with

    module = loaded.module.eval()  # type: ignore[attr-defined]
    x = torch.zeros(1, *loaded.input_shape)  # type: ignore[attr-defined]
    buf = io.BytesIO()
    try:
        torch.onnx.export(module, (x,), buf, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    except Exception as exc:  # exporter failures are environment problems, reported in one line
        raise CrossnasError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    write_with(dest, lambda fh: fh.write(buf.getvalue()))
    return dest
