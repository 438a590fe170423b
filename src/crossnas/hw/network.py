"""The network representation the cost model reads.

One internal form serves every source: a list of *compute layers* (``conv``, ``fc``,
``pooling``, ``element_sum``) with their shapes and bits, in execution order, each naming
its input layers by absolute index (``-1`` = the network input). Layers without
hardware (``bn``, ``relu``, ``view``, ``dropout``) are folded away, exactly as MNSIM-2.0
drops them before mapping.

Sources:

* :func:`network_from_dict` — the MNSIM-style JSON object
  ``{"input_shape": [C, H, W], "layers": [...]}``. Layer dicts use MNSIM's keys
  (``type``, ``in_channels``, ``out_channels``, ``kernel_size``, ``stride``,
  ``padding``, ``in_features``, ``out_features``, ``input_index`` (relative, default
  ``[-1]``), ``mode``). Each may carry ``weight_bit`` and ``activation_bit`` (MNSIM's
  per-layer quantize entry folded in); missing bits default to 9/9 (MNSIM's default
  quantize config). A layer's input and output precision are both its own
  ``activation_bit`` (as in MNSIM).
* :func:`network_from_module` — a PyTorch module traced with an example input
  (``torch.fx``); ``QuantConv2d``/``QuantLinear`` contribute their ``w_bits``/``a_bits``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from crossnas.errors import CrossnasError

DEFAULT_WEIGHT_BIT = 9
DEFAULT_ACTIVATION_BIT = 9
COMPUTE_TYPES = ("conv", "fc", "pooling", "element_sum")
PASS_TYPES = ("bn", "relu", "dropout", "view")
_LAYER_KEYS: dict[str, set[str]] = {
    "conv": {"in_channels", "out_channels", "kernel_size", "stride", "padding", "depthwise", "groups", "bias"},
    "fc": {"in_features", "out_features", "bias"},
    "pooling": {"mode", "kernel_size", "stride", "padding"},
    "element_sum": set(),
    "bn": {"features"},
    "relu": set(),
    "dropout": {"p"},
    "view": set(),
}
_COMMON_KEYS = {"type", "input_index", "weight_bit", "activation_bit", "point_shift", "name"}
_ALLOWED_KEYS = {t: frozenset(_COMMON_KEYS | keys) for t, keys in _LAYER_KEYS.items()}


@dataclass(frozen=True)
class Layer:
    """One compute layer.

    Attributes:
        name: display name (``conv0``, ``pool1``, ``fc2``, ``sum0``).
        type: ``conv`` | ``fc`` | ``pooling`` | ``element_sum``.
        inputs: absolute indices of the input compute layers (``-1`` = network input).
        cin, cout: channels (features for fc).
        kernel, stride, padding: spatial parameters (1/1/0 for fc and element_sum).
        in_hw, out_hw: input/output feature map (H, W); ``(1, 1)`` for fc.
        w_bits: weight bits (0 for layers without weights).
        a_bits: activation bits (input and output precision of the layer).
    """

    name: str
    type: str
    inputs: tuple[int, ...]
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    w_bits: int = DEFAULT_WEIGHT_BIT
    a_bits: int = DEFAULT_ACTIVATION_BIT

    @property
    def n_out_pixels(self) -> int:
        return self.out_hw[0] * self.out_hw[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "inputs": list(self.inputs), "cin": self.cin,
            "cout": self.cout, "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
            "in_hw": list(self.in_hw), "out_hw": list(self.out_hw), "w_bits": self.w_bits, "a_bits": self.a_bits,
        }


@dataclass(frozen=True)
class Network:
    """A network as the cost model sees it.

    Attributes:
        input_shape: ``(C, H, W)`` of one input.
        layers: compute layers in execution order.
        key: a hashable structural key (used for caching hardware-independent plans).
    """

    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    key: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", (self.input_shape, self.layers))

    def __hash__(self) -> int:
        return hash(self.key)


def _int_field(d: Mapping[str, Any], key: str, where: str, default: int | None = None, lo: int = 1) -> int:
    v = d.get(key)
    if type(v) is int and v >= lo:  # the common case, checked first
        return v
    if key not in d:
        if default is None:
            raise CrossnasError(f"{where}: missing key {key!r}")
        return default
    v = d[key]
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int):
        raise CrossnasError(f"{where}.{key}: must be an integer >= {lo}, got {v!r}")
    if v < lo:
        raise CrossnasError(f"{where}.{key}: must be an integer >= {lo}, got {v}")
    return v


def _bits(d: Mapping[str, Any], key: str, where: str, default: int) -> int:
    v = d.get(key)
    if v is None:
        return default
    if type(v) is not int or not 1 <= v <= 16:
        raise CrossnasError(f"{where}.{key}: bits must be an integer in 1..16, got {v!r}")
    return v


def network_from_dict(d: Mapping[str, Any] | Network) -> Network:
    """Parses the MNSIM-style network object (see module docstring).

    Args:
        d: ``{"input_shape": [C, H, W], "layers": [...]}``; a :class:`Network` is returned as is.
            ``quantize_config`` (a list parallel to ``layers``) is accepted as in MNSIM's files.

    Returns:
        The network.

    Raises:
        CrossnasError: unknown keys or types, non-positive sizes, bits outside 1..16,
            shapes that don't chain (one line naming the layer and field).
    """
    if isinstance(d, Network):
        return d
    if not isinstance(d, Mapping):
        raise CrossnasError(f"network: expected an object with input_shape and layers, got {type(d).__name__}")
    extra = set(d) - {"input_shape", "layers", "quantize_config", "name", "hardware", "arch"}
    if extra:
        raise CrossnasError(f"network: unknown key(s) {sorted(extra)}; allowed: input_shape, layers, quantize_config, name")
    shape = d.get("input_shape", [3, 32, 32])
    if (
        not isinstance(shape, (list, tuple)) or len(shape) != 3
        or any(isinstance(x, bool) or not isinstance(x, int) or x <= 0 for x in shape)
    ):
        raise CrossnasError(f"network.input_shape: must be 3 positive integers [C, H, W], got {shape!r}")
    raw_layers = d.get("layers")
    if not isinstance(raw_layers, (list, tuple)) or not raw_layers:
        raise CrossnasError("network.layers: must be a non-empty list of layer objects")
    quant = d.get("quantize_config")
    if quant is not None and (not isinstance(quant, (list, tuple)) or len(quant) != len(raw_layers)):
        raise CrossnasError("network.quantize_config: must be a list with one entry per layer")

    c0, h0, w0 = (int(x) for x in shape)
    # Per original layer: (kind, shape, producer compute index). kind "map" = (C,H,W), "flat" = (F,)
    states: list[tuple[str, tuple[int, ...], int]] = []
    layers: list[Layer] = []
    counters: dict[str, int] = {}
    start = ("map", (c0, h0, w0), -1)

    def name_for(t: str) -> str:
        prefix = {"conv": "conv", "fc": "fc", "pooling": "pool", "element_sum": "sum"}[t]
        i = counters.get(prefix, 0)
        counters[prefix] = i + 1
        return f"{prefix}{i}"

    for i, ld in enumerate(raw_layers):
        where = f"network.layers[{i}]"
        if type(ld) is not dict and not isinstance(ld, Mapping):
            raise CrossnasError(f"{where}: must be an object, got {type(ld).__name__}")
        if quant is not None:
            ld = dict(ld)
            q = quant[i]
            if not isinstance(q, Mapping):
                raise CrossnasError(f"network.quantize_config[{i}]: must be an object")
            for qk in ("weight_bit", "activation_bit"):
                if qk in q and qk not in ld:
                    ld[qk] = q[qk]
        t = ld.get("type")
        if t not in _LAYER_KEYS:
            raise CrossnasError(f"{where}.type: unknown layer type {t!r}; allowed: {sorted(_LAYER_KEYS)}")
        unknown = ld.keys() - _ALLOWED_KEYS[t]
        if unknown:
            raise CrossnasError(
                f"{where}: unknown key(s) {sorted(unknown)} for a {t} layer; allowed: {sorted(_COMMON_KEYS | _LAYER_KEYS[t])}"
            )
        wb = _bits(ld, "weight_bit", where, DEFAULT_WEIGHT_BIT)
        ab = _bits(ld, "activation_bit", where, DEFAULT_ACTIVATION_BIT)
        idx = ld.get("input_index", [-1])
        if isinstance(idx, int) and not isinstance(idx, bool):
            idx = [idx]
        if (
            not isinstance(idx, (list, tuple)) or not idx
            or any(type(x) is not int or x >= 0 for x in idx)
        ):
            raise CrossnasError(f"{where}.input_index: must be a list of negative integers (relative offsets), got {idx!r}")
        srcs = []
        for off in idx:
            j = i + off
            if j < -1:
                raise CrossnasError(f"{where}.input_index: offset {off} points before the network input")
            srcs.append(states[j] if j >= 0 else start)
        if t != "element_sum" and len(srcs) != 1:
            raise CrossnasError(f"{where}.input_index: a {t} layer takes exactly one input, got {len(srcs)}")
        kind, shp, prod = srcs[0]

        if t in ("bn", "relu", "dropout"):
            if t == "bn" and "features" in ld:
                feats = _int_field(ld, "features", where)
                if feats != shp[0]:
                    raise CrossnasError(f"{where}.features: {feats} does not match the {shp[0]} channels it receives")
            states.append((kind, shp, prod))
            continue
        if t == "view":
            states.append(("flat", (int(math.prod(shp)),), prod))
            continue
        if t == "conv":
            if kind != "map":
                raise CrossnasError(f"{where}: a conv layer needs a feature map input, got a flat vector")
            cin = _int_field(ld, "in_channels", where)
            cout = _int_field(ld, "out_channels", where)
            k = _int_field(ld, "kernel_size", where)
            s = _int_field(ld, "stride", where, 1)
            p = _int_field(ld, "padding", where, 0, lo=0)
            if ld.get("depthwise", "normal") not in ("normal", False, None):
                raise CrossnasError(f"{where}.depthwise: only 'normal' convolutions are supported")
            if cin != shp[0]:
                raise CrossnasError(f"{where}.in_channels: {cin} does not match the {shp[0]} channels it receives")
            h, w = shp[1], shp[2]
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if ho < 1 or wo < 1:
                raise CrossnasError(f"{where}.kernel_size: {k} is larger than the padded {h}x{w} input")
            layers.append(Layer(name_for(t), t, (prod,), cin, cout, k, s, p, (h, w), (ho, wo), wb, ab))
            states.append(("map", (cout, ho, wo), len(layers) - 1))
        elif t == "pooling":
            if kind != "map":
                raise CrossnasError(f"{where}: a pooling layer needs a feature map input, got a flat vector")
            k = _int_field(ld, "kernel_size", where)
            s = _int_field(ld, "stride", where, k)
            p = _int_field(ld, "padding", where, 0, lo=0)
            mode = ld.get("mode", "MAX")
            if mode not in ("MAX", "AVE", "AVG", "max", "avg", "ave"):
                raise CrossnasError(f"{where}.mode: {mode!r}; allowed: MAX, AVE")
            c, h, w = shp
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if ho < 1 or wo < 1:
                raise CrossnasError(f"{where}.kernel_size: {k} is larger than the padded {h}x{w} input")
            layers.append(Layer(name_for(t), t, (prod,), c, c, k, s, p, (h, w), (ho, wo), wb, ab))
            states.append(("map", (c, ho, wo), len(layers) - 1))
        elif t == "fc":
            fin = _int_field(ld, "in_features", where)
            fout = _int_field(ld, "out_features", where)
            n = int(math.prod(shp))
            if fin != n:
                raise CrossnasError(f"{where}.in_features: {fin} does not match the {n} values it receives")
            layers.append(Layer(name_for(t), t, (prod,), fin, fout, 1, 1, 0, (1, 1), (1, 1), wb, ab))
            states.append(("flat", (fout,), len(layers) - 1))
        else:  # element_sum
            if len(srcs) < 2:
                raise CrossnasError(f"{where}.input_index: element_sum needs at least two inputs")
            for _k2, shp2, _p2 in srcs[1:]:
                if shp2 != shp:
                    raise CrossnasError(f"{where}: element_sum inputs have different shapes {list(shp)} and {list(shp2)}")
            if kind != "map":
                raise CrossnasError(f"{where}: element_sum of flat vectors is not supported")
            c, h, w = shp
            prods = tuple(s_[2] for s_ in srcs)
            layers.append(Layer(name_for(t), t, prods, c, c, 1, 1, 0, (h, w), (h, w), wb, ab))
            states.append(("map", (c, h, w), len(layers) - 1))
    if not any(layer.type in ("conv", "fc") for layer in layers):
        raise CrossnasError("network.layers: no conv or fc layer, nothing to map onto crossbars")
    return Network((c0, h0, w0), tuple(layers))


def network_to_dict(net: Network) -> dict[str, Any]:
    """The compute layers as a JSON-able dict (for reports)."""
    return {"input_shape": list(net.input_shape), "layers": [layer.to_dict() for layer in net.layers]}


def _hw_of(t: Any) -> tuple[int, int]:
    """(H, W) of an NCHW activation, as a tuple (``tuple(t.shape[2:4])``)."""
    return cast("tuple[int, int]", tuple(t.shape[2:4]))


def network_from_module(module: Any, example_input: Any) -> Network:
    """Traces a PyTorch module with an example input into a :class:`Network`.

    Conv2d/Linear (and crossnas ``QuantConv2d``/``QuantLinear``, whose ``w_bits``/``a_bits``
    are used), MaxPool2d/AvgPool2d/adaptive pools, additions of two tensors (residual sums),
    and shape-only ops (BN, ReLU, dropout, flatten/view) are recognised. Bits of plain
    layers default to 9/9; a pooling or sum layer takes the bits of its first input layer.

    Args:
        module: an ``nn.Module``.
        example_input: a tensor of shape ``(1, C, H, W)`` (or ``(C, H, W)``).

    Raises:
        CrossnasError: an operation the cost model cannot map.
    """
    import operator

    import torch
    import torch.fx as fx
    from torch import nn

    x = example_input
    if x.dim() == 3:
        x = x.unsqueeze(0)
    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                              nn.AdaptiveMaxPool2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.Dropout)):
                return True
            return super().is_leaf_module(m, qualname)

    try:
        graph = _Tracer().trace(module)
        gm = fx.GraphModule(module, graph)
    except Exception as exc:  # noqa: BLE001 - tracing errors come in many types
        raise CrossnasError(f"module cannot be traced with torch.fx: {str(exc).splitlines()[0]}") from exc
    interp = fx.Interpreter(gm)
    env: dict[str, Any] = {}
    layers: list[Layer] = []
    producer: dict[str, int] = {}
    bits_of: dict[int, tuple[int, int]] = {}
    counters: dict[str, int] = {}

    def name_for(t: str) -> str:
        prefix = {"conv": "conv", "fc": "fc", "pooling": "pool", "element_sum": "sum"}[t]
        i = counters.get(prefix, 0)
        counters[prefix] = i + 1
        return f"{prefix}{i}"

    def add(layer: Layer, node: fx.Node) -> None:
        layers.append(layer)
        producer[node.name] = len(layers) - 1
        bits_of[len(layers) - 1] = (layer.w_bits, layer.a_bits)

    module.eval()
    with torch.no_grad():
        for node in gm.graph.nodes:
            args = fx.node.map_arg(node.args, lambda n: env[n.name])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n.name])
            if node.op == "placeholder":
                out = x
                producer[node.name] = -1
            elif node.op == "output":
                break
            else:
                out = getattr(interp, node.op)(node.target, args, kwargs)
            env[node.name] = out
            if node.op == "placeholder":
                continue
            in_nodes = [a for a in node.all_input_nodes]
            src = producer.get(in_nodes[0].name, -1) if in_nodes else -1
            in_t = env[in_nodes[0].name] if in_nodes else None
            if node.op == "call_module":
                sub = gm.get_submodule(node.target)
                wb = int(getattr(sub, "w_bits", DEFAULT_WEIGHT_BIT) or DEFAULT_WEIGHT_BIT)
                ab = int(getattr(sub, "a_bits", DEFAULT_ACTIVATION_BIT) or DEFAULT_ACTIVATION_BIT)
                if isinstance(sub, nn.Conv2d):
                    assert in_t is not None  # a conv module always has an input node
                    if sub.groups != 1:
                        raise CrossnasError(f"module {node.target}: grouped/depthwise conv is not supported")
                    k, s, p = sub.kernel_size[0], sub.stride[0], sub.padding[0]
                    if isinstance(p, str):
                        raise CrossnasError(f"module {node.target}: string padding is not supported")
                    add(Layer(name_for("conv"), "conv", (src,), sub.in_channels, sub.out_channels, k, s, p,
                              _hw_of(in_t), _hw_of(out), wb, ab), node)
                    continue
                if isinstance(sub, nn.Linear):
                    add(Layer(name_for("fc"), "fc", (src,), sub.in_features, sub.out_features, 1, 1, 0,
                              (1, 1), (1, 1), wb, ab), node)
                    continue
                if isinstance(sub, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                    assert in_t is not None  # a pooling module always has an input node
                    h_in, h_out = in_t.shape[2], out.shape[2]
                    if isinstance(sub, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                        if h_in == h_out:
                            producer[node.name] = src
                            continue
                        k = s = h_in // h_out
                        p = 0
                    else:
                        k = sub.kernel_size if isinstance(sub.kernel_size, int) else sub.kernel_size[0]
                        s = sub.stride if isinstance(sub.stride, int) else sub.stride[0]
                        p = sub.padding if isinstance(sub.padding, int) else sub.padding[0]
                    pw, pa = bits_of.get(src, (DEFAULT_WEIGHT_BIT, DEFAULT_ACTIVATION_BIT))
                    add(Layer(name_for("pooling"), "pooling", (src,), in_t.shape[1], in_t.shape[1], k, s, p,
                              _hw_of(in_t), _hw_of(out), pw, pa), node)
                    continue
                # shape-preserving or reshaping modules: pass through
                producer[node.name] = src
                continue
            if node.op == "call_function" and node.target in (operator.add, torch.add) and len(in_nodes) == 2:
                a, b = (env[n.name] for n in in_nodes)
                if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and a.dim() == 4:
                    srcs = tuple(producer.get(n.name, -1) for n in in_nodes)
                    pw, pa = bits_of.get(srcs[0], (DEFAULT_WEIGHT_BIT, DEFAULT_ACTIVATION_BIT))
                    add(Layer(name_for("element_sum"), "element_sum", srcs, a.shape[1], a.shape[1], 1, 1, 0,
                              _hw_of(a), _hw_of(a), pw, pa), node)
                    continue
            producer[node.name] = src
    if not any(layer.type in ("conv", "fc") for layer in layers):
        raise CrossnasError("module: no Conv2d or Linear layer found")
    shape = tuple(int(v) for v in x.shape[1:4])
    return Network(shape, tuple(layers))  # type: ignore[arg-type]
