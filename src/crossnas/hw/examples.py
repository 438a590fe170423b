"""Built-in example networks, as MNSIM-2.0 defines them for CIFAR-10 (3x32x32, 10 classes).

Layer lists follow MNSIM's own ``network.get_net`` (a BN after every conv, 9-bit weights
and activations everywhere); they equal the ``mnsim_builtin_default`` reference networks.
Usable by name on the CLI: ``crossnas hw vgg8``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossnas.errors import CrossnasError

_B = {"weight_bit": 9, "activation_bit": 9}


def _conv(cin: int, cout: int, k: int = 3, p: int = 1, s: int = 1, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"type": "conv", "in_channels": cin, "out_channels": cout, "kernel_size": k, "padding": p, "stride": s, **extra},
        {"type": "bn", "features": cout},
    ]


def _pool(k: int = 2) -> dict[str, Any]:
    return {"type": "pooling", "mode": "MAX", "kernel_size": k, "stride": k, "padding": 0}


def _relu() -> dict[str, Any]:
    return {"type": "relu"}


def _fc(i: int, o: int) -> dict[str, Any]:
    return {"type": "fc", "in_features": i, "out_features": o}


def _finish(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"input_shape": [3, 32, 32], "layers": [{**d, **_B} for d in layers]}


def lenet() -> dict[str, Any]:
    layers = [*_conv(3, 6, 5, 0), _relu(), _pool(), *_conv(6, 16, 5, 0), _relu(), _pool(),
              *_conv(16, 120, 5, 0), _relu(), {"type": "view"}, _fc(120, 84), {"type": "dropout"}, _relu(),
              _fc(84, 10)]
    return _finish(layers)


def alexnet() -> dict[str, Any]:
    layers = [*_conv(3, 64, s=2), _relu(), _pool(), *_conv(64, 192), _relu(), _pool(), *_conv(192, 384), _relu(),
              *_conv(384, 256), _relu(), *_conv(256, 256), _relu(), _pool(), {"type": "view"}, _fc(1024, 512),
              {"type": "dropout"}, _relu(), _fc(512, 10)]
    return _finish(layers)


def _vgg(cfg: list[Any], fc_in: int, last: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    layers: list[dict[str, Any]] = []
    cin = 3
    for c in cfg:
        if c == "M":
            layers.append(_pool())
        else:
            layers += [*_conv(cin, c), _relu()]
            cin = c
    layers += last or []
    layers += [{"type": "view"}, _fc(fc_in, 10)]
    return _finish(layers)


def vgg8() -> dict[str, Any]:
    return _vgg([128, 128, "M", 256, 256, "M", 512, 512, "M"], 1024,
                [*_conv(512, 1024, 3, 0), _relu(), _pool()])


def vgg16() -> dict[str, Any]:
    return _vgg([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512], 2048)


def resnet18() -> dict[str, Any]:
    layers: list[dict[str, Any]] = [*_conv(3, 64), _relu(), _pool()]
    cin = 64
    for cout, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for b in range(2):
            s = first_stride if b == 0 else 1
            layers += [*_conv(cin, cout, s=s), _relu(), *_conv(cout, cout)]
            if s != 1 or cin != cout:
                layers += _conv(cin, cout, s=s, input_index=[-6])
                layers.append({"type": "element_sum", "input_index": [-1, -3]})
            else:
                layers.append({"type": "element_sum", "input_index": [-1, -6]})
            layers.append(_relu())
            cin = cout
    layers += [{"type": "view"}, _fc(2048, 512), {"type": "dropout"}, _relu(), _fc(512, 10)]
    return _finish(layers)


EXAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "lenet": lenet, "alexnet": alexnet, "vgg8": vgg8, "vgg16": vgg16, "resnet18": resnet18,
}


def example_network(name: str) -> dict[str, Any]:
    """The MNSIM-style dict of a built-in network.

    Raises:
        CrossnasError: unknown name.
    """
    try:
        return EXAMPLES[name]()
    except KeyError:
        raise CrossnasError(f"network {name!r}: not a file and not a built-in; built-ins: {sorted(EXAMPLES)}") from None
