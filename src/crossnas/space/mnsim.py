"""An :class:`ArchSpec` as a network description in MNSIM's layer-dict format.

The result is the JSON object the cost model reads: ``{"input_shape": [C, H, W],
"layers": [...]}`` where each layer is one of MNSIM's layer dicts with
``weight_bit``/``activation_bit`` folded in. The construction follows the reference
data exactly: a block's bits apply to all its layers (pool included); residual
shortcut = 1x1 conv reading the block input (``input_index``) then ``element_sum``;
head = max pool with kernel = stride = map/pool (omitted when the map already is
``pool`` wide), ``view``, FC layers with ReLU between, the head's bits.

Epitomes: every conv of a block with epitome gene ``m > 1`` (the residual shortcut
included, as the block's bits) carries ``"epitome": {"out_wrap": ..., "in_wrap": ...}``
with the wraps of :func:`crossnas.space.arch.epitome_wraps` (``m`` clamped to the conv's
channels; omitted where both clamp to 1). The head's FC layers are never wrapped.
"""

from __future__ import annotations

from typing import Any

from crossnas.config.space import SpaceConfig
from crossnas.space.arch import ArchSpec, LayerSpec


def _epitome(layer: LayerSpec, cin: int, cout: int) -> dict[str, Any]:
    """The ``epitome`` entry of one of ``layer``'s convs (empty when dense)."""
    mo, mi = layer.wraps(cin, cout)
    return {"epitome": {"out_wrap": mo, "in_wrap": mi}} if (mo, mi) != (1, 1) else {}


def arch_to_network_dict(
    spec: ArchSpec, space: SpaceConfig, input_shape: tuple[int, int, int], n_classes: int
) -> dict[str, Any]:
    """Builds the MNSIM-style network description of ``spec``.

    Args:
        spec: the candidate.
        space: its space (head sizes and bits).
        input_shape: ``(C, H, W)`` of one input image.
        n_classes: outputs of the last FC.

    Returns:
        ``{"input_shape": [C, H, W], "layers": [layer dicts]}``.
    """
    c, h, _w = input_shape
    layers: list[dict[str, Any]] = []

    def add(d: dict[str, Any], wb: int, ab: int) -> None:
        d["weight_bit"], d["activation_bit"] = wb, ab
        layers.append(d)

    cur_c, cur_hw = c, h
    for layer in spec.layers:
        if layer.block == "skip":
            continue
        wb, ab, out = layer.w_bits, layer.a_bits, layer.width
        conv = {"type": "conv", "kernel_size": 3, "padding": 1, "stride": 1}
        if layer.block in ("vgg", "vgg_nopool"):
            add({**conv, "in_channels": cur_c, "out_channels": out, **_epitome(layer, cur_c, out)}, wb, ab)
            add({"type": "bn", "features": out}, wb, ab)
            add({"type": "relu"}, wb, ab)
            add({**conv, "in_channels": out, "out_channels": out, **_epitome(layer, out, out)}, wb, ab)
            add({"type": "bn", "features": out}, wb, ab)
            add({"type": "relu"}, wb, ab)
            if layer.block == "vgg":
                add({"type": "pooling", "mode": "MAX", "kernel_size": 2, "stride": 2}, wb, ab)
                cur_hw //= 2
        elif layer.block == "residual":
            add({**conv, "in_channels": cur_c, "out_channels": out, **_epitome(layer, cur_c, out)}, wb, ab)
            add({"type": "bn", "features": out}, wb, ab)
            add({"type": "relu"}, wb, ab)
            add({**conv, "in_channels": out, "out_channels": out, **_epitome(layer, out, out)}, wb, ab)
            add({"type": "bn", "features": out}, wb, ab)
            add(
                {"type": "conv", "in_channels": cur_c, "out_channels": out, "kernel_size": 1,
                 "padding": 0, "stride": 1, "input_index": [-6], **_epitome(layer, cur_c, out)},
                wb, ab,
            )
            add({"type": "element_sum", "input_index": [-1, -3]}, wb, ab)
            add({"type": "relu"}, wb, ab)
        else:  # pragma: no cover - guarded by SpaceConfig validation
            raise ValueError(f"unknown block {layer.block}")
        cur_c = out

    hwb, hab = space.head_w_bits, space.head_a_bits
    pool = space.head.pool
    if cur_hw > pool:
        k = cur_hw // pool
        add({"type": "pooling", "mode": "MAX", "kernel_size": k, "stride": k}, hwb, hab)
        cur_hw = (cur_hw - k) // k + 1
    add({"type": "view"}, hwb, hab)
    sizes = [cur_c * cur_hw * cur_hw, *space.head.fc, n_classes]
    for i in range(len(sizes) - 1):
        if i > 0:
            add({"type": "relu"}, hwb, hab)
        add({"type": "fc", "in_features": sizes[i], "out_features": sizes[i + 1]}, hwb, hab)
    return {"input_shape": [c, h, input_shape[2]], "layers": layers}
