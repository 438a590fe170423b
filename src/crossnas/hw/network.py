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
  Every op is either mapped or refused with a one-line error naming it (see the function).

Size limits. Both sources refuse absurd sizes with a one-line :class:`CrossnasError`
naming the field, the value and the allowed range, before anything is costed. The limits
are far above any network a crossbar accelerator runs (ResNet-152 at 224x224 uses at most
2048 channels, 7x7 kernels, 2.4M weights and 0.8M values per layer) and keep every count
the cost model forms well inside int64 and float64:

* channels (conv in/out, the input's C): 1..``MAX_CHANNELS`` = 2**20;
* fc features (in/out, a flattened map included): 1..``MAX_FEATURES`` = 2**24;
* height and width of any feature map (input and outputs): 1..``MAX_HW`` = 2**14;
* pixels of any feature map, H*W: at most ``MAX_PIXELS`` = 2**24;
* values of any feature map, C*H*W: at most ``MAX_ACTIVATIONS`` = 2**30;
* kernel size and stride 1..``MAX_KERNEL`` = 64, padding 0..64;
* weights of one conv/fc layer, C_in*k*k*C_out (F_in*F_out): at most ``MAX_WEIGHTS`` = 2**32;
* entries in ``layers``: at most ``MAX_LAYERS`` = 2**16.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from crossnas.errors import CrossnasError

DEFAULT_WEIGHT_BIT = 9
DEFAULT_ACTIVATION_BIT = 9
COMPUTE_TYPES = ("conv", "fc", "pooling", "element_sum")
PASS_TYPES = ("bn", "relu", "dropout", "view")
# Size limits (module docstring).
MAX_CHANNELS = 2**20
MAX_FEATURES = 2**24
MAX_HW = 2**14
MAX_PIXELS = 2**24
MAX_ACTIVATIONS = 2**30
MAX_KERNEL = 64
MAX_WEIGHTS = 2**32
MAX_LAYERS = 2**16
_LAYER_KEYS: dict[str, set[str]] = {
    "conv": {"in_channels", "out_channels", "kernel_size", "stride", "padding", "depthwise", "groups", "bias",
             "epitome"},
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


class Layer(NamedTuple):
    """One compute layer (an immutable named tuple: ``network_from_dict`` builds tens per
    network, and a frozen dataclass's constructor cost 4 us each, most of the parse time).

    Attributes:
        name: display name (``conv0``, ``pool1``, ``fc2``, ``sum0``).
        type: ``conv`` | ``fc`` | ``pooling`` | ``element_sum``.
        inputs: absolute indices of the input compute layers (``-1`` = network input).
        cin, cout: channels (features for fc).
        kernel, stride, padding: spatial parameters (1/1/0 for fc and element_sum).
        in_hw, out_hw: input/output feature map (H, W); ``(1, 1)`` for fc.
        w_bits: weight bits (0 for layers without weights).
        a_bits: activation bits (input and output precision of the layer).
        out_wrap, in_wrap: epitome wrapping of a conv (EPIM): only the epitome of shape
            ``(ceil(cout/out_wrap), ceil(cin/in_wrap), k, k)`` is stored on the crossbars,
            ``W[o, i] = E[o mod E_out, i mod E_in]``; 1 = a dense layer.
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
    out_wrap: int = 1
    in_wrap: int = 1

    @property
    def stored_cin(self) -> int:
        """Input channels of the weights stored on the crossbars (the epitome's)."""
        return -(-self.cin // self.in_wrap)

    @property
    def stored_cout(self) -> int:
        """Output channels of the weights stored on the crossbars (the epitome's)."""
        return -(-self.cout // self.out_wrap)

    @property
    def n_out_pixels(self) -> int:
        return self.out_hw[0] * self.out_hw[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "inputs": list(self.inputs), "cin": self.cin,
            "cout": self.cout, "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
            "in_hw": list(self.in_hw), "out_hw": list(self.out_hw), "w_bits": self.w_bits, "a_bits": self.a_bits,
            **({"epitome": {"out_wrap": self.out_wrap, "in_wrap": self.in_wrap}}
               if (self.out_wrap, self.in_wrap) != (1, 1) else {}),
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


def _out_of_range(label: str, v: int, lo: int, hi: int) -> CrossnasError:
    return CrossnasError(f"{label}: {v} is outside the allowed range {lo}..{hi}")


def _check_map(label: str, c: int, h: int, w: int) -> None:
    """Refuses a feature map beyond the size limits (module docstring)."""
    if h > MAX_HW or w > MAX_HW:
        raise CrossnasError(f"{label}: feature map {h}x{w} is outside the allowed range 1..{MAX_HW} per side")
    if h * w > MAX_PIXELS:
        raise CrossnasError(
            f"{label}: the {h}x{w} feature map has {h * w} pixels, outside the allowed range 1..{MAX_PIXELS}"
        )
    if c * h * w > MAX_ACTIVATIONS:
        raise CrossnasError(
            f"{label}: the {c}x{h}x{w} feature map has {c * h * w} values, outside the allowed range "
            f"1..{MAX_ACTIVATIONS}"
        )


def _check_weights(label: str, cin: int, k: int, cout: int) -> None:
    if cin * k * k * cout > MAX_WEIGHTS:
        shape = f"{cin}x{k}x{k}x{cout}" if k > 1 else f"{cin}x{cout}"
        raise CrossnasError(
            f"{label}: {shape} = {cin * k * k * cout} weights, outside the allowed range 1..{MAX_WEIGHTS}"
        )


def _int_field(
    d: Mapping[str, Any], key: str, where: str | int, default: int | None = None, lo: int = 1, hi: int = MAX_KERNEL
) -> int:
    """An integer field in ``lo..hi`` (or ``default`` when missing); ``where`` names the layer
    in errors (an int: ``network.layers[where]``)."""
    v = d.get(key)
    if type(v) is int and lo <= v <= hi:  # the common case, checked first
        return v
    if type(where) is int:
        where = f"network.layers[{where}]"
    if key not in d:
        if default is None:
            raise CrossnasError(f"{where}: missing key {key!r}")
        return default
    v = d[key]
    if isinstance(v, (list, tuple)) and len(v) == 2:
        if v[0] != v[1]:
            raise CrossnasError(
                f"{where}.{key}: non-square {list(v)} is not supported; the cost model maps square k x k windows"
            )
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int):
        raise CrossnasError(f"{where}.{key}: must be an integer in {lo}..{hi}, got {v!r}")
    raise _out_of_range(f"{where}.{key}", v, lo, hi)


def _bits(d: Mapping[str, Any], key: str, i: int, default: int) -> int:
    """Bits in 1..16 of layer ``i`` (``default`` when missing or null)."""
    v = d.get(key)
    if v is None:
        return default
    if type(v) is not int or not 1 <= v <= 16:
        raise CrossnasError(f"network.layers[{i}].{key}: bits must be an integer in 1..16, got {v!r}")
    return v


def _with_quant(ld: Mapping[str, Any], q: Any, i: int) -> dict[str, Any]:
    """Layer ``i`` with MNSIM's ``quantize_config[i]`` bits folded in (the layer's own win)."""
    if not isinstance(q, Mapping):
        raise CrossnasError(f"network.quantize_config[{i}]: must be an object")
    ld = dict(ld)
    for qk in ("weight_bit", "activation_bit"):
        if qk in q and qk not in ld:
            ld[qk] = q[qk]
    return ld


def network_from_dict(d: Mapping[str, Any] | Network) -> Network:
    """Parses the MNSIM-style network object (see module docstring).

    Args:
        d: ``{"input_shape": [C, H, W], "layers": [...]}``; a :class:`Network` is returned as is.
            ``quantize_config`` (a list parallel to ``layers``) is accepted as in MNSIM's files.

    Returns:
        The network.

    Raises:
        CrossnasError: unknown keys or types, non-positive sizes, sizes beyond the limits in
            the module docstring, bits outside 1..16, shapes that don't chain (one line
            naming the layer and field).
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
    if shape[0] > MAX_CHANNELS:
        raise _out_of_range("network.input_shape[0] (channels)", shape[0], 1, MAX_CHANNELS)
    _check_map("network.input_shape", shape[0], shape[1], shape[2])
    raw_layers = d.get("layers")
    if not isinstance(raw_layers, (list, tuple)) or not raw_layers:
        raise CrossnasError("network.layers: must be a non-empty list of layer objects")
    if len(raw_layers) > MAX_LAYERS:
        raise _out_of_range("network.layers: number of layers", len(raw_layers), 1, MAX_LAYERS)
    quant = d.get("quantize_config")
    if quant is not None and (not isinstance(quant, (list, tuple)) or len(quant) != len(raw_layers)):
        raise CrossnasError("network.quantize_config: must be a list with one entry per layer")

    c0, h0, w0 = (int(x) for x in shape)
    # Per original layer: (kind, shape, producer compute index). kind "map" = (C,H,W), "flat" = (F,)
    states: list[tuple[str, tuple[int, ...], int]] = []
    layers: list[Layer] = []
    counters = dict.fromkeys(COMPUTE_TYPES, 0)
    start = ("map", (c0, h0, w0), -1)
    # The loop runs tens of times per network and the CLI's --batch parses thousands of
    # networks: the common, valid case is checked inline (with module constants bound
    # locally); the helpers format the errors.
    allowed_keys, previous, add_state = _ALLOWED_KEYS, _PREVIOUS, states.append
    for i, ld in enumerate(raw_layers):
        if type(ld) is not dict and not isinstance(ld, Mapping):
            raise CrossnasError(f"network.layers[{i}]: must be an object, got {type(ld).__name__}")
        if quant is not None:
            ld = _with_quant(ld, quant[i], i)
        t = ld.get("type")
        allowed = allowed_keys.get(t) if type(t) is str else None
        if allowed is None:
            raise CrossnasError(f"network.layers[{i}].type: unknown layer type {t!r}; allowed: {sorted(_LAYER_KEYS)}")
        if not allowed.issuperset(ld):
            raise CrossnasError(
                f"network.layers[{i}]: unknown key(s) {sorted(ld.keys() - allowed)} for a {t} layer; "
                f"allowed: {sorted(allowed)}"
            )
        wb = ld.get("weight_bit", DEFAULT_WEIGHT_BIT)
        if type(wb) is not int or not 1 <= wb <= 16:
            wb = _bits(ld, "weight_bit", i, DEFAULT_WEIGHT_BIT)
        ab = ld.get("activation_bit", DEFAULT_ACTIVATION_BIT)
        if type(ab) is not int or not 1 <= ab <= 16:
            ab = _bits(ld, "activation_bit", i, DEFAULT_ACTIVATION_BIT)
        idx = ld.get("input_index", previous)
        if idx == previous and type(idx[0]) is int:  # the common case: the previous layer
            src = states[i - 1] if i else start
            srcs = None
        else:
            srcs = _sources(idx, i, states, start)
            if t != "element_sum" and len(srcs) != 1:
                raise CrossnasError(
                    f"network.layers[{i}].input_index: a {t} layer takes exactly one input, got {len(srcs)}"
                )
            src = srcs[0]
        kind, shp, prod = src

        if t == "relu" or t == "dropout":
            add_state(src)
            continue
        if t == "bn":
            feats = ld.get("features", shp[0])
            if type(feats) is not int or feats != shp[0]:
                feats = _int_field(ld, "features", i, hi=MAX_FEATURES)
                if feats != shp[0]:
                    raise CrossnasError(
                        f"network.layers[{i}].features: {feats} does not match the {shp[0]} channels it receives"
                    )
            add_state(src)
            continue
        if t == "view":
            add_state(("flat", (int(math.prod(shp)),), prod))
            continue
        n_t = counters[t]
        counters[t] = n_t + 1
        if t == "conv":
            if kind != "map":
                raise CrossnasError(f"network.layers[{i}]: a conv layer needs a feature map input, got a flat vector")
            cin, cout, k = ld.get("in_channels"), ld.get("out_channels"), ld.get("kernel_size")
            s, p = ld.get("stride", 1), ld.get("padding", 0)
            if not (type(cin) is int and type(cout) is int and type(k) is int and type(s) is int and type(p) is int
                    and 1 <= cin <= MAX_CHANNELS and 1 <= cout <= MAX_CHANNELS and 1 <= k <= MAX_KERNEL
                    and 1 <= s <= MAX_KERNEL and 0 <= p <= MAX_KERNEL):  # _int_field names what is wrong
                cin = _int_field(ld, "in_channels", i, hi=MAX_CHANNELS)
                cout = _int_field(ld, "out_channels", i, hi=MAX_CHANNELS)
                k = _int_field(ld, "kernel_size", i)
                s = _int_field(ld, "stride", i, 1)
                p = _int_field(ld, "padding", i, 0, lo=0)
            if ld.get("depthwise", "normal") not in ("normal", False, None):
                raise CrossnasError(f"network.layers[{i}].depthwise: only 'normal' convolutions are supported")
            if cin != shp[0]:
                raise CrossnasError(
                    f"network.layers[{i}].in_channels: {cin} does not match the {shp[0]} channels it receives"
                )
            h, w = shp[1], shp[2]
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if ho < 1 or wo < 1:
                raise CrossnasError(f"network.layers[{i}].kernel_size: {k} is larger than the padded {h}x{w} input")
            if ho > MAX_HW or wo > MAX_HW or ho * wo > MAX_PIXELS or cout * ho * wo > MAX_ACTIVATIONS:
                _check_map(f"network.layers[{i}] output", cout, ho, wo)
            if cin * k * k * cout > MAX_WEIGHTS:
                _check_weights(f"network.layers[{i}]", cin, k, cout)
            e = ld.get("epitome")
            m_out, m_in = (1, 1) if e is None else _epitome(e, f"network.layers[{i}]", cin, cout)
            layers.append(Layer(f"conv{n_t}", t, (prod,), cin, cout, k, s, p, (h, w), (ho, wo), wb, ab, m_out, m_in))
            add_state(("map", (cout, ho, wo), len(layers) - 1))
        elif t == "pooling":
            if kind != "map":
                raise CrossnasError(f"network.layers[{i}]: a pooling layer needs a feature map input, got a flat vector")
            k = _int_field(ld, "kernel_size", i)
            s = _int_field(ld, "stride", i, k)
            p = _int_field(ld, "padding", i, 0, lo=0)
            mode = ld.get("mode", "MAX")
            if mode not in ("MAX", "AVE", "AVG", "max", "avg", "ave"):
                raise CrossnasError(f"network.layers[{i}].mode: {mode!r}; allowed: MAX, AVE")
            c, h, w = shp
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if ho < 1 or wo < 1:
                raise CrossnasError(f"network.layers[{i}].kernel_size: {k} is larger than the padded {h}x{w} input")
            if ho > MAX_HW or wo > MAX_HW or ho * wo > MAX_PIXELS or c * ho * wo > MAX_ACTIVATIONS:
                _check_map(f"network.layers[{i}] output", c, ho, wo)
            layers.append(Layer(f"pool{n_t}", t, (prod,), c, c, k, s, p, (h, w), (ho, wo), wb, ab))
            add_state(("map", (c, ho, wo), len(layers) - 1))
        elif t == "fc":
            fin = _int_field(ld, "in_features", i, hi=MAX_FEATURES)
            fout = _int_field(ld, "out_features", i, hi=MAX_FEATURES)
            if fin * fout > MAX_WEIGHTS:
                _check_weights(f"network.layers[{i}]", fin, 1, fout)
            n = int(math.prod(shp))
            if fin != n:
                raise CrossnasError(f"network.layers[{i}].in_features: {fin} does not match the {n} values it receives")
            layers.append(Layer(f"fc{n_t}", t, (prod,), fin, fout, 1, 1, 0, (1, 1), (1, 1), wb, ab))
            add_state(("flat", (fout,), len(layers) - 1))
        else:  # element_sum
            if srcs is None or len(srcs) < 2:
                raise CrossnasError(f"network.layers[{i}].input_index: element_sum needs at least two inputs")
            for _k2, shp2, _p2 in srcs[1:]:
                if shp2 != shp:
                    raise CrossnasError(
                        f"network.layers[{i}]: element_sum inputs have different shapes {list(shp)} and {list(shp2)}"
                    )
            if kind != "map":
                raise CrossnasError(f"network.layers[{i}]: element_sum of flat vectors is not supported")
            c, h, w = shp
            prods = tuple(s_[2] for s_ in srcs)
            layers.append(Layer(f"sum{n_t}", t, prods, c, c, 1, 1, 0, (h, w), (h, w), wb, ab))
            add_state(("map", (c, h, w), len(layers) - 1))
    if not any(layer.type in ("conv", "fc") for layer in layers):
        raise CrossnasError("network.layers: no conv or fc layer, nothing to map onto crossbars")
    return Network((c0, h0, w0), tuple(layers))


_PREVIOUS = [-1]


def _sources(idx: Any, i: int, states: list, start: tuple) -> list:
    """The states layer ``i``'s ``input_index`` (relative offsets) names."""
    where = f"network.layers[{i}]"
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
    return srcs


def _epitome(e: Any, where: str, cin: int, cout: int) -> tuple[int, int]:
    """``(out_wrap, in_wrap)`` of a conv's ``epitome`` entry (``None``: dense)."""
    if e is None:
        return 1, 1
    if not isinstance(e, Mapping) or set(e) - {"out_wrap", "in_wrap"}:
        raise CrossnasError(f"{where}.epitome: must be an object with out_wrap and/or in_wrap, got {e!r}")
    out = []
    for key, n in (("out_wrap", cout), ("in_wrap", cin)):
        v = e.get(key, 1)
        if type(v) is not int or not 1 <= v <= n:
            raise CrossnasError(f"{where}.epitome.{key}: must be an integer in 1..{n} (the layer's channels), got {v!r}")
        out.append(v)
    return out[0], out[1]


def network_to_dict(net: Network) -> dict[str, Any]:
    """The compute layers as a JSON-able dict (for reports)."""
    return {"input_shape": list(net.input_shape), "layers": [layer.to_dict() for layer in net.layers]}


def _square(v: Any, field: str, where: str) -> int:
    """An int, or a pair of equal ints, as one int; non-square windows are refused."""
    if isinstance(v, (list, tuple)):
        vals = tuple(v)
        if len(vals) == 1 or (len(vals) == 2 and vals[0] == vals[1]):
            v = vals[0]
        else:
            raise CrossnasError(
                f"{where}: non-square {field} {vals} is not supported; the cost model maps square k x k windows"
            )
    if isinstance(v, bool) or not isinstance(v, int):
        raise CrossnasError(f"{where}: {field} must be an integer or a square pair, got {v!r}")
    return v


def _check_module_layer(layer: Layer, where: str) -> None:
    """Applies the size limits (module docstring) to a traced layer."""
    fc = layer.type == "fc"
    c_hi = MAX_FEATURES if fc else MAX_CHANNELS
    for label, v, hi in (
        ("in_features" if fc else "in_channels", layer.cin, c_hi),
        ("out_features" if fc else "out_channels", layer.cout, c_hi),
        ("kernel_size", layer.kernel, MAX_KERNEL),
        ("stride", layer.stride, MAX_KERNEL),
    ):
        if not 1 <= v <= hi:
            raise _out_of_range(f"{where} {label}", v, 1, hi)
    if not 0 <= layer.padding <= MAX_KERNEL:
        raise _out_of_range(f"{where} padding", layer.padding, 0, MAX_KERNEL)
    if not fc:
        _check_map(f"{where} output", layer.cout, *layer.out_hw)
    if layer.type in ("conv", "fc"):
        _check_weights(f"{where}", layer.cin, layer.kernel, layer.cout)


def network_from_module(module: Any, example_input: Any) -> Network:
    """Traces a PyTorch module with an example input into a :class:`Network`.

    Every node of the ``torch.fx`` graph is run on the example input (so all shapes are
    the module's real ones) and is either mapped or refused:

    * ``nn.Conv2d`` (and crossnas ``QuantConv2d``, whose ``w_bits``/``a_bits`` are used;
      ``groups=1``, square kernel/stride/padding, dilation 1) -> ``conv``;
      ``nn.Linear``/``QuantLinear`` on a flat vector -> ``fc``.
    * ``nn.MaxPool2d``/``nn.AvgPool2d``, ``F.max_pool2d``/``F.avg_pool2d`` (kernel, stride,
      padding read from args/kwargs), adaptive pools whose output divides the input evenly,
      and ``x.mean((2, 3))`` (global average) -> ``pooling``.
    * ``+`` / ``torch.add`` of two feature maps of the same shape -> ``element_sum``.
    * Ops that keep the tensor's shape (BN, activations, dropout, an addition of a
      constant, ...) and layout ops that keep its size (flatten, view, reshape, contiguous,
      squeeze, unsqueeze) are folded away; ``size``/``shape`` queries are ignored.
    * Everything else is a one-line :class:`CrossnasError` naming the op: concatenation
      (``torch.cat``/``stack``: there is no concatenation layer), functional convs and
      matmuls, weighted modules other than Conv2d/Linear, non-square or dilated windows,
      ``ceil_mode`` pools, ops joining two branches other than ``+``, and any op that
      changes the tensor's shape without being modelled.

    Bits of plain layers default to 9/9; a pooling or sum layer takes the bits of its first
    input layer. The module is run in eval mode; its training flag is restored afterwards.

    Args:
        module: an ``nn.Module``.
        example_input: a tensor of shape ``(1, C, H, W)`` (or ``(C, H, W)``; only the first
            sample of a larger batch is used).

    Returns:
        The network.

    Raises:
        CrossnasError: an operation the cost model cannot map, or a size beyond the limits
            in the module docstring (one line naming the op or module and why).
    """
    import torch
    from torch import nn

    x = example_input
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CrossnasError(f"example_input: expected a tensor of shape (1, C, H, W) or (C, H, W), got {got}")
    x = x.unsqueeze(0) if x.dim() == 3 else x[:1]
    c0, h0, w0 = (int(v) for v in x.shape[1:4])
    if not 1 <= c0 <= MAX_CHANNELS:
        raise _out_of_range("example_input channels", c0, 1, MAX_CHANNELS)
    _check_map("example_input", c0, h0, w0)

    was_training = bool(getattr(module, "training", False))
    module.eval()
    try:
        with torch.no_grad():
            layers = _Trace(module, torch, nn).run(x)
    finally:
        module.train(was_training)
    if not any(layer.type in ("conv", "fc") for layer in layers):
        raise CrossnasError("module: no Conv2d or Linear layer found, nothing to map onto crossbars")
    if len(layers) > MAX_LAYERS:
        raise _out_of_range("module: number of compute layers", len(layers), 1, MAX_LAYERS)
    return Network((c0, h0, w0), tuple(layers))


# Positional parameters (after the input) of the functional pools, as torch declares them.
_MAX_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_POOL_ARGS = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_ADAPTIVE_ARGS = ("output_size", "return_indices")
# Tensor methods and torch functions that only re-lay the values out (same element count).
_RESHAPE_NAMES = frozenset({
    "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "view_as", "reshape_as",
})
_ADD_METHODS = frozenset({"add", "add_", "__add__", "__radd__", "__iadd__"})
_MATMUL_METHODS = frozenset({"matmul", "mm", "bmm", "__matmul__", "__rmatmul__", "addmm", "baddbmm"})
_CONCAT_METHODS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack"})
_GLOBAL_DIMS = ((2, 3), (3, 2), (-2, -1), (-1, -2), (2, -1), (-2, 3))


class _Trace:
    """One tracing run of :func:`network_from_module` (state of the walk over the fx graph)."""

    def __init__(self, module: Any, torch: Any, nn: Any) -> None:
        import operator

        import torch.fx as fx
        import torch.nn.functional as F

        self.torch, self.nn, self.fx = torch, nn, fx
        leaf_types = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                      nn.AdaptiveMaxPool2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.Dropout)

        class _Tracer(fx.Tracer):
            def is_leaf_module(self, m: Any, qualname: str) -> bool:
                if isinstance(m, leaf_types):
                    return True
                return bool(super().is_leaf_module(m, qualname))

        try:
            graph = _Tracer().trace(module)
            self.gm = fx.GraphModule(module, graph)
        except Exception as exc:  # noqa: BLE001 - tracing errors come in many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CrossnasError(f"module cannot be traced with torch.fx: {first}") from exc
        self.interp = fx.Interpreter(self.gm)
        self.max_pools = {F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d}
        self.avg_pools = {F.avg_pool2d}
        self.adaptive_pools = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices}
        self.with_indices = {F.max_pool2d_with_indices, F.adaptive_max_pool2d_with_indices}
        self.adds = {operator.add, operator.iadd, torch.add}
        self.concats = {getattr(torch, n) for n in _CONCAT_METHODS if hasattr(torch, n)}
        self.compute_fns = {
            getattr(mod, n) for mod, names in (
                (torch, ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                         "matmul", "mm", "bmm", "einsum", "addmm", "baddbmm", "bilinear", "tensordot")),
                (F, ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                     "linear", "bilinear", "embedding", "embedding_bag", "scaled_dot_product_attention")),
            ) for n in names if hasattr(mod, n)
        } | {operator.matmul, operator.imatmul}
        self.reshape_fns = {getattr(torch, n) for n in _RESHAPE_NAMES if hasattr(torch, n)}
        self.means = {torch.mean}
        self.norm_types = tuple(
            getattr(nn, n) for n in ("LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm") if hasattr(nn, n)
        ) + (nn.modules.batchnorm._NormBase,)
        self.env: dict[str, Any] = {}
        self.producer: dict[str, int] = {}  # node name -> compute layer index of tensors derived from the input
        self.layers: list[Layer] = []
        self.counters: dict[str, int] = {}

    # --- helpers -------------------------------------------------------------------------

    def describe(self, node: Any) -> str:
        """How a node is named in error messages."""
        if node.op == "call_module":
            return f"module {node.target} ({type(self.gm.get_submodule(node.target)).__name__})"
        if node.op == "call_method":
            return f"Tensor.{node.target} (node {node.name})"
        if node.op == "call_function":
            try:
                qual = self.fx.node._get_qualified_name(node.target)
            except Exception:  # noqa: BLE001 - unusual callables without a qualified name
                qual = getattr(node.target, "__name__", repr(node.target))
            qual = qual.replace("torch._C._nn.", "torch.nn.functional.").replace("_operator.", "operator.")
            return f"{qual} (node {node.name})"
        return f"{node.op} {node.target}"

    def add_layer(self, node: Any, layer: Layer) -> None:
        self.layers.append(layer)
        self.producer[node.name] = len(self.layers) - 1

    def name_for(self, t: str) -> str:
        prefix = {"conv": "conv", "fc": "fc", "pooling": "pool", "element_sum": "sum"}[t]
        i = self.counters.get(prefix, 0)
        self.counters[prefix] = i + 1
        return f"{prefix}{i}"

    def bits_of(self, src: int) -> tuple[int, int]:
        if src < 0:
            return DEFAULT_WEIGHT_BIT, DEFAULT_ACTIVATION_BIT
        return self.layers[src].w_bits, self.layers[src].a_bits

    def execute(self, node: Any, where: str) -> Any:
        args = self.fx.node.map_arg(node.args, lambda n: self.env[n.name])
        kwargs = self.fx.node.map_arg(node.kwargs, lambda n: self.env[n.name])
        try:
            return getattr(self.interp, node.op)(node.target, args, kwargs)
        except CrossnasError:
            raise
        except Exception as exc:  # noqa: BLE001 - the module's own errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CrossnasError(f"{where}: fails on the example input: {first}") from exc

    def value_args(self, node: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = self.fx.node.map_arg(node.args, lambda n: self.env[n.name])
        kwargs = self.fx.node.map_arg(node.kwargs, lambda n: self.env[n.name])
        return tuple(args), dict(kwargs)

    def is_tensor(self, v: Any) -> bool:
        return isinstance(v, self.torch.Tensor)

    # --- the walk ------------------------------------------------------------------------

    def run(self, x: Any) -> list[Layer]:
        first_input = True
        for node in self.gm.graph.nodes:
            if node.op == "output":
                break
            if node.op == "placeholder":
                if first_input:
                    self.env[node.name] = x
                    self.producer[node.name] = -1
                    first_input = False
                elif node.args:  # an optional argument of forward(): its default
                    self.env[node.name] = node.args[0]
                else:
                    raise CrossnasError(
                        f"module: forward() takes a second required input {node.target!r}; only one input is traced"
                    )
                continue
            where = self.describe(node)
            data = [n for n in node.all_input_nodes if n.name in self.producer]
            if node.op == "get_attr" or not data:
                # constants (parameters, buffers, values built from them): no data path
                self.env[node.name] = self.execute(node, where)
                continue
            self.visit(node, where, data)
        return self.layers

    def visit(self, node: Any, where: str, data: list[Any]) -> None:
        nn = self.nn
        in_t = self.env[data[0].name]
        src = self.producer[data[0].name]
        if node.op == "call_module":
            sub = self.gm.get_submodule(node.target)
            if isinstance(sub, nn.Conv2d):
                self.conv(node, where, sub, in_t, src)
                return
            if isinstance(sub, nn.Linear):
                self.linear(node, where, sub, in_t, src)
                return
            if isinstance(sub, (nn.MaxPool2d, nn.AvgPool2d)):
                if getattr(sub, "return_indices", False):
                    raise CrossnasError(f"{where}: return_indices=True is not modelled")
                d = _square(getattr(sub, "dilation", 1), "dilation", where)
                if d != 1:
                    raise CrossnasError(f"{where}: dilation {d} is not supported (only 1)")
                self.pool(node, where, in_t, src, sub.kernel_size, sub.stride or sub.kernel_size, sub.padding)
                return
            if isinstance(sub, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                if getattr(sub, "return_indices", False):
                    raise CrossnasError(f"{where}: return_indices=True is not modelled")
                self.adaptive(node, where, in_t, src)
                return
            if not isinstance(sub, self.norm_types) and any(p.dim() >= 2 for p in sub.parameters()):
                raise CrossnasError(
                    f"{where}: a weighted layer the cost model does not map (only Conv2d and Linear are mapped)"
                )
            if isinstance(sub, (nn.Flatten, nn.Unflatten)):
                self.reshape(node, where, in_t, src)
                return
            self.generic(node, where, data, in_t, src)
            return

        target = node.target
        method = node.op == "call_method"
        if (target in _CONCAT_METHODS) if method else (target in self.concats):
            raise CrossnasError(
                f"{where}: concatenation is not modelled (the cost model has no concatenation layer)"
            )
        if (target in _MATMUL_METHODS) if method else (target in self.compute_fns):
            raise CrossnasError(
                f"{where}: a functional conv/matmul is not mapped; use nn.Conv2d / nn.Linear modules"
            )
        if not method and (target in self.max_pools or target in self.avg_pools):
            self.functional_pool(node, where, in_t, src)
            return
        if not method and target in self.adaptive_pools:
            args, kwargs = self.value_args(node)
            opts = self.bind(_ADAPTIVE_ARGS, args, kwargs)
            if opts.get("return_indices") or target in self.with_indices:
                raise CrossnasError(f"{where}: return_indices=True is not modelled")
            self.adaptive(node, where, in_t, src)
            return
        if (target in _ADD_METHODS) if method else (target in self.adds):
            tensors = [n for n in data if self.is_tensor(self.env[n.name])]
            if len(tensors) >= 2:
                self.element_sum(node, where, tensors)
                return
        if (target == "mean") if method else (target in self.means):
            if self.global_mean(node, where, in_t, src):
                return
        if (target in _RESHAPE_NAMES) if method else (target in self.reshape_fns):
            self.reshape(node, where, in_t, src)
            return
        self.generic(node, where, data, in_t, src)

    # --- mapped ops ----------------------------------------------------------------------

    def conv(self, node: Any, where: str, sub: Any, in_t: Any, src: int) -> None:
        if sub.groups != 1:
            raise CrossnasError(f"{where}: grouped/depthwise conv (groups={sub.groups}) is not supported")
        if in_t.dim() != 4:
            raise CrossnasError(f"{where}: expects a (1, C, H, W) feature map, got shape {tuple(in_t.shape)}")
        k = _square(sub.kernel_size, "kernel_size", where)
        s = _square(sub.stride, "stride", where)
        d = _square(sub.dilation, "dilation", where)
        if d != 1:
            raise CrossnasError(f"{where}: dilation {d} is not supported (only 1)")
        if isinstance(sub.padding, str):
            if sub.padding == "valid":
                p = 0
            elif sub.padding == "same" and k % 2 == 1:
                p = (k - 1) // 2
            else:
                raise CrossnasError(f"{where}: padding={sub.padding!r} with kernel {k} is asymmetric, not supported")
        else:
            p = _square(sub.padding, "padding", where)
        h, w = int(in_t.shape[2]), int(in_t.shape[3])
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise CrossnasError(f"{where}: kernel_size {k} is larger than the padded {h}x{w} input")
        wb = int(getattr(sub, "w_bits", DEFAULT_WEIGHT_BIT) or DEFAULT_WEIGHT_BIT)
        ab = int(getattr(sub, "a_bits", DEFAULT_ACTIVATION_BIT) or DEFAULT_ACTIVATION_BIT)
        # an epitome conv (crossnas.quant.epitome.EpitomeConv2d) stores only its epitome
        m_out, m_in = int(getattr(sub, "out_wrap", 1)), int(getattr(sub, "in_wrap", 1))
        layer = Layer(self.name_for("conv"), "conv", (src,), int(sub.in_channels), int(sub.out_channels),
                      k, s, p, (h, w), (ho, wo), wb, ab, m_out, m_in)
        _check_module_layer(layer, where)  # before running: an absurd layer never allocates its output
        out = self.execute(node, where)
        self.check_out(where, out, (int(sub.out_channels), ho, wo))
        self.env[node.name] = out
        self.add_layer(node, layer)

    def linear(self, node: Any, where: str, sub: Any, in_t: Any, src: int) -> None:
        fin, fout = int(sub.in_features), int(sub.out_features)
        wb = int(getattr(sub, "w_bits", DEFAULT_WEIGHT_BIT) or DEFAULT_WEIGHT_BIT)
        ab = int(getattr(sub, "a_bits", DEFAULT_ACTIVATION_BIT) or DEFAULT_ACTIVATION_BIT)
        layer = Layer(self.name_for("fc"), "fc", (src,), fin, fout, 1, 1, 0, (1, 1), (1, 1), wb, ab)
        _check_module_layer(layer, where)
        if int(in_t.numel()) != fin:
            raise CrossnasError(
                f"{where}: receives a {tuple(in_t.shape)} tensor ({int(in_t.numel())} values) for {fin} "
                "in_features; the cost model maps an fc layer on one flat vector (flatten first)"
            )
        self.env[node.name] = self.execute(node, where)
        self.add_layer(node, layer)

    def bind(self, names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Parameters of a functional call by name (the first positional is the input)."""
        rest = args if "input" in kwargs else args[1:]
        opts = dict(zip(names, rest, strict=False))
        opts.update({k: v for k, v in kwargs.items() if k != "input"})
        return opts

    def functional_pool(self, node: Any, where: str, in_t: Any, src: int) -> None:
        args, kwargs = self.value_args(node)
        is_max = node.target in self.max_pools
        opts = self.bind(_MAX_POOL_ARGS if is_max else _AVG_POOL_ARGS, args, kwargs)
        if "kernel_size" not in opts:
            raise CrossnasError(f"{where}: no kernel_size given")
        if opts.get("return_indices") or node.target in self.with_indices:
            raise CrossnasError(f"{where}: return_indices=True is not modelled")
        d = _square(opts.get("dilation", 1), "dilation", where)
        if d != 1:
            raise CrossnasError(f"{where}: dilation {d} is not supported (only 1)")
        k = opts["kernel_size"]
        s = opts.get("stride")
        if s is None or (isinstance(s, (list, tuple)) and len(s) == 0):
            s = k
        self.pool(node, where, in_t, src, k, s, opts.get("padding", 0))

    def pool(self, node: Any, where: str, in_t: Any, src: int, k_: Any, s_: Any, p_: Any) -> None:
        if in_t.dim() != 4:
            raise CrossnasError(f"{where}: expects a (1, C, H, W) feature map, got shape {tuple(in_t.shape)}")
        k = _square(k_, "kernel_size", where)
        s = _square(s_, "stride", where)
        p = _square(p_, "padding", where)
        self.add_pool(node, where, in_t, src, k, s, p, self.execute(node, where))

    def add_pool(self, node: Any, where: str, in_t: Any, src: int, k: int, s: int, p: int, out: Any) -> None:
        c, h, w = (int(v) for v in in_t.shape[1:4])
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise CrossnasError(f"{where}: kernel_size {k} is larger than the padded {h}x{w} input")
        pw, pa = self.bits_of(src)
        layer = Layer(self.name_for("pooling"), "pooling", (src,), c, c, k, s, p, (h, w), (ho, wo), pw, pa)
        _check_module_layer(layer, where)
        if out.dim() == 4:
            self.check_out(where, out, (c, ho, wo))
        self.env[node.name] = out
        self.add_layer(node, layer)

    def adaptive(self, node: Any, where: str, in_t: Any, src: int) -> None:
        if in_t.dim() != 4:
            raise CrossnasError(f"{where}: expects a (1, C, H, W) feature map, got shape {tuple(in_t.shape)}")
        out = self.execute(node, where)
        h, w = int(in_t.shape[2]), int(in_t.shape[3])
        ho, wo = int(out.shape[2]), int(out.shape[3])
        if h % ho or w % wo:
            raise CrossnasError(
                f"{where}: adaptive pooling {h}x{w} -> {ho}x{wo} has uneven windows, not modelled "
                "(the output size must divide the input size)"
            )
        kh, kw = h // ho, w // wo
        if kh != kw:
            raise CrossnasError(
                f"{where}: adaptive pooling {h}x{w} -> {ho}x{wo} needs a non-square {kh}x{kw} window, not supported"
            )
        if kh == 1:  # identity
            self.env[node.name] = out
            self.producer[node.name] = src
            return
        self.add_pool(node, where, in_t, src, kh, kh, 0, out)

    def global_mean(self, node: Any, where: str, in_t: Any, src: int) -> bool:
        """``x.mean((2, 3))`` over a feature map as a global average pool; False if it is another mean."""
        args, kwargs = self.value_args(node)
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if in_t.dim() != 4 or not isinstance(dim, (list, tuple)) or tuple(dim) not in _GLOBAL_DIMS:
            return False
        h, w = int(in_t.shape[2]), int(in_t.shape[3])
        if h != w:
            raise CrossnasError(f"{where}: a global mean over a non-square {h}x{w} map needs a non-square window")
        out = self.execute(node, where)
        if h == 1:
            self.env[node.name] = out
            self.producer[node.name] = src
            return True
        self.add_pool(node, where, in_t, src, h, h, 0, out)
        return True

    def element_sum(self, node: Any, where: str, tensors: list[Any]) -> None:
        shapes = [tuple(self.env[n.name].shape) for n in tensors]
        if len(tensors) != 2 or shapes[0] != shapes[1] or len(shapes[0]) != 4:
            raise CrossnasError(
                f"{where}: adds tensors of shapes {' and '.join(map(str, shapes))}; element_sum needs two "
                "(1, C, H, W) feature maps of the same shape"
            )
        out = self.execute(node, where)
        srcs = tuple(self.producer[n.name] for n in tensors)
        pw, pa = self.bits_of(srcs[0])
        c, h, w = shapes[0][1:4]
        self.env[node.name] = out
        self.add_layer(node, Layer(self.name_for("element_sum"), "element_sum", srcs, c, c, 1, 1, 0,
                                   (h, w), (h, w), pw, pa))

    # --- folded ops ----------------------------------------------------------------------

    def check_out(self, where: str, out: Any, expected: tuple[int, int, int]) -> None:
        got = tuple(int(v) for v in out.shape[1:4]) if self.is_tensor(out) and out.dim() == 4 else None
        if got != expected:
            raise CrossnasError(
                f"{where}: output {got} differs from the {expected} the cost model assumes "
                "(floor((H + 2p - k) / s) + 1; ceil_mode is not modelled)"
            )

    def reshape(self, node: Any, where: str, in_t: Any, src: int) -> None:
        out = self.execute(node, where)
        if not self.is_tensor(out) or out.numel() != in_t.numel():
            got = tuple(out.shape) if self.is_tensor(out) else type(out).__name__
            raise CrossnasError(f"{where}: reshapes {tuple(in_t.shape)} to {got}, changing its size; not modelled")
        self.env[node.name] = out
        self.producer[node.name] = src

    def generic(self, node: Any, where: str, data: list[Any], in_t: Any, src: int) -> None:
        """An op without hardware: folded when it keeps the shape, refused when it changes it."""
        branches = [n for n in data if self.is_tensor(self.env[n.name]) and self.env[n.name].numel() > 1]
        if len(branches) >= 2:
            raise CrossnasError(
                f"{where}: joins {len(branches)} branches; only an element-wise add (element_sum) is modelled"
            )
        out = self.execute(node, where)
        if isinstance(out, (list, tuple)) and any(self.is_tensor(v) for v in out):
            raise CrossnasError(f"{where}: returns several tensors (a split or a reduction); not modelled")
        if not self.is_tensor(out):  # sizes, shapes, Python numbers: no data path
            self.env[node.name] = out
            return
        if not self.is_tensor(in_t) or tuple(out.shape) != tuple(in_t.shape):
            got_in = tuple(in_t.shape) if self.is_tensor(in_t) else type(in_t).__name__
            raise CrossnasError(
                f"{where}: changes the shape {got_in} -> {tuple(out.shape)} and is not modelled by the cost model"
            )
        self.env[node.name] = out
        self.producer[node.name] = src
