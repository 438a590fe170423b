"""``crossnas export``: one entry point for the three formats."""

from __future__ import annotations

import logging
from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.utils.io import write_json, write_text

logger = logging.getLogger(__name__)


def export_model(model_dir: Path, out: Path, fmt: str, *, normalize_input: bool = True) -> list[Path]:
    """Exports a model directory; returns the written files.

    Args:
        normalize_input: ``pytorch`` and ``onnx`` take raw images (the dataset's raw scale,
            :data:`crossnas.data.RAW_INPUT`) and apply the training normalisation
            ``(x - mean) / std`` themselves; ``False``: they take normalised inputs (for
            ``pytorch`` only the default of ``build()``, the module can still do either).
    """
    from crossnas.supernet.modeldir import load_model_dir

    if fmt == "pytorch":
        from crossnas.export.pytorch import export_pytorch

        return list(export_pytorch(model_dir, out, normalize_input=normalize_input).values())
    loaded = load_model_dir(model_dir)
    if fmt == "mnsim":
        from crossnas.export.mnsim import epitome_note, hardware_to_mnsim_ini, network_to_mnsim
        from crossnas.space import arch_to_network_dict

        if loaded.hardware is None:
            raise CrossnasError(f"{model_dir}: the model directory records no hardware config; --format mnsim needs one")
        net = arch_to_network_dict(loaded.spec, loaded.space, loaded.input_shape, loaded.n_classes)
        write_json(out / "network.json", network_to_mnsim(net))
        write_text(out / "SimConfig.ini", hardware_to_mnsim_ini(loaded.hardware))
        files = [out / "network.json", out / "SimConfig.ini"]
        note = epitome_note(net)
        if note is not None:  # MNSIM has no epitomes: say that they were exported dense
            logger.warning("%s", note)
            write_text(out / "EPITOME_NOTE.txt", note + "\n")
            files.append(out / "EPITOME_NOTE.txt")
        return files
    if fmt == "onnx":
        return [_export_onnx(loaded, out / "model.onnx", normalize_input)]
    raise CrossnasError(f"--format {fmt!r}: allowed: pytorch, onnx, mnsim")


def _export_onnx(loaded: object, dest: Path, normalize_input: bool = True) -> Path:
    """The network as ONNX: input ``image`` (raw images, normalised inside the graph, unless
    ``normalize_input`` is false), output ``logits``; the input convention is also in the
    model's metadata (``input``, ``normalization_mean``, ``normalization_std``)."""
    try:
        import onnx
    except ImportError as exc:
        raise CrossnasError("--format onnx needs the onnx package: pip install 'crossnas[onnx]'") from exc
    import io

    import torch

    from crossnas.export.pytorch import NormalizedInput, normalization_of
    from crossnas.utils.io import write_with

    module = loaded.module.eval()  # type: ignore[attr-defined]
    norm = normalization_of(loaded.data_cfg, loaded.input_shape[0])  # type: ignore[attr-defined]
    if normalize_input:
        module = NormalizedInput(module, norm["mean"], norm["std"]).eval()
    x = torch.zeros(1, *loaded.input_shape)  # type: ignore[attr-defined]
    buf = io.BytesIO()
    try:  # torch's stubs omit the file-like target that torch.onnx.export documents
        torch.onnx.export(module, (x,), buf, input_names=["image"], output_names=["logits"],  # type: ignore[arg-type]
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    except Exception as exc:  # exporter failures are environment problems, reported in one line
        raise CrossnasError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    model = onnx.load_from_string(buf.getvalue())
    meta = {"input": f"raw images, {norm['raw_input']}" if normalize_input else
                     "images already normalised: (raw - mean) / std per channel",
            "normalization_mean": repr(norm["mean"]), "normalization_std": repr(norm["std"])}
    onnx.helper.set_model_props(model, meta)
    data = model.SerializeToString()
    write_with(dest, lambda fh: fh.write(data))
    return dest
