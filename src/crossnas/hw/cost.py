"""Latency, energy, area and power of networks on an analog PIM accelerator.

A behaviour-level model that reproduces MNSIM-2.0's figures (``cost_mode="mnsim"``,
the default) or a physically corrected variant with a memory hierarchy
(``cost_mode="corrected"``). See ``docs/cost_model.md`` for the formulas, MNSIM's quirks
and the corrections. Every figure comes from one kernel (:mod:`crossnas.hw.kernel`); this
module turns networks and hardware configurations into its flat inputs and its outputs
into results.

Units inside: ns, nJ, um^2, W (MNSIM's). Results are reported in crossnas units:
``latency_ms``, ``energy_mJ``, ``edp_mJms``, ``area_mm2``, ``power_W``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.hw import kernel as K
from crossnas.hw import params as P
from crossnas.hw.network import Layer, Network, network_from_dict

COMPONENTS = K.COMPONENTS
BACKENDS = ("auto", "numba", "python")
_PLAN_ATTR = "_crossnas_kernel_plan"
KERNEL_WARMUP = 32
"""``auto`` compiles (or loads the cached compilation of) the kernel only once a call costs,
or the process has costed, this many networks, or a network is large; a one-off CLI call on
a small network never pays for importing numba."""
_PIXELS_WARMUP = 20_000
"""... or once a batch holds this many output pixels (the uncompiled kernel runs ~1 us/pixel)."""
_costed = 0


@dataclass
class LayerCost:
    """Per-layer result (MNSIM units)."""

    layer: Layer
    pes: int = 0
    tiles: int = 0
    crossbars: int = 0
    finish_ns: float = 0.0
    energy: dict[str, float] = field(default_factory=dict)
    power: dict[str, float] = field(default_factory=dict)
    area: float = 0.0
    d_in: float = 0.0
    d_trans: float = 0.0
    adc_bits: int = 0
    adc_bits_needed: int = 0
    compute_ns: float = 0.0
    movement_ns: float = 0.0
    dram_bits: float = 0.0


@dataclass
class NetCost:
    """Whole-network result (MNSIM units)."""

    latency_ns: float
    energy_nJ: float
    area_um2: float
    power_W: float
    layers: list[LayerCost]
    energy_parts: dict[str, float]
    area_parts: dict[str, float]
    power_parts: dict[str, float]
    tiles: int
    mode: str
    buffers_bits: dict[str, float] = field(default_factory=dict)
    dram_bits: float = 0.0
    static_nJ: float = 0.0


def _plan_rows(net: Network) -> tuple[list[tuple[int, ...]], list[int]]:
    rows: list[tuple[int, ...]] = []
    ins: list[int] = []
    types = K.LAYER_TYPES
    for lay in net.layers:  # Layer is a named tuple: positions 3..7 are cin, cout, kernel, stride, padding
        rows.append((types[lay[1]], *lay[3:8], *lay[8], *lay[9], lay[10], lay[11], len(ins), len(lay[2]), lay[12],
                     lay[13]))
        ins.extend(lay[2])
    return rows, ins


def plan_of(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's view of a network, cached on the (immutable) network object.

    Returns:
        ``(table, inputs)``: ``table`` int64 ``(L, 16)`` with columns
        :data:`crossnas.hw.kernel.LAYER_COLS`; ``inputs`` int64 ``(I,)`` input-layer indices
        (``-1`` = the network input).
    """
    plan = net.__dict__.get(_PLAN_ATTR)
    if plan is None:
        rows, ins = _plan_rows(net)
        plan = (np.array(rows, dtype=np.int64).reshape(-1, len(K.LAYER_COLS)), np.array(ins, dtype=np.int64))
        # a frozen dataclass: write the cache entry directly (as functools.cached_property does)
        net.__dict__[_PLAN_ATTR] = plan
    return plan


def _run(nets: Sequence[Network], hws: Sequence[HardwareConfig], backend: str) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """Runs the kernel; returns ``(tot, lay, lay_off)``."""
    global _costed
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r}; allowed: {', '.join(BACKENDS)}")
    n = len(nets)
    by_id: dict[int, np.ndarray] = {}  # a batch shares few configurations: hash and compare each once
    vecs = []
    for h in hws:
        v = by_id.get(id(h))
        if v is None:
            v = by_id[id(h)] = P.hw_vector(h)
        vecs.append(v)
    plans = [plan_of(x) for x in nets]
    if n == 1:
        tab, ins = plans[0]
        hwm = vecs[0][None, :].copy()  # writable, like np.stack's result: one compiled signature
    else:
        tab = np.concatenate([pl[0] for pl in plans])
        ins = np.concatenate([pl[1] for pl in plans])
        hwm = np.stack(vecs)
    lay_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(pl[0]) for pl in plans], out=lay_off[1:])
    in_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(pl[1]) for pl in plans], out=in_off[1:])
    tot = np.zeros((n, K.N_TOT))
    lay = np.zeros((len(tab), K.N_LAY))
    _costed += n
    if backend == "auto":
        pixels = int((tab[:, K._OH] * tab[:, K._OW]).sum()) if len(tab) else 0
        compiled = K.compiled_loaded() or _costed >= KERNEL_WARMUP or pixels >= _PIXELS_WARMUP
    else:
        compiled = backend == "numba"
    fn = K.load(compiled)
    consts = P.KERNEL_CONSTS
    try:
        fn(tab, ins, lay_off, in_off, hwm, consts, tot, lay)
    except Exception as exc:
        if fn is K.cost_kernel or backend == "numba":
            raise
        K.failed(exc)  # a broken numba install must not break costing
        K.cost_kernel(tab, ins, lay_off, in_off, hwm, consts, tot, lay)
    return tot, lay, lay_off


def _error(net: Network, hw: HardwareConfig, tot_row: np.ndarray) -> str:
    """The one-line message of a network the kernel refused."""
    if tot_row[K.T_ERR] == K.ERR_UNMAPPABLE:
        lay = net.layers[int(tot_row[K.T_ERR_LAYER])]
        kk = lay.kernel * lay.kernel
        return (f"crossbar.rows: {hw.crossbar.rows} rows cannot hold one {lay.kernel}x{lay.kernel} kernel slice "
                f"({lay.name}); need at least {kk}")
    have = hw.chip.tile_rows * hw.chip.tile_cols
    return (f"chip: the network needs {int(tot_row[K.T_TILES])} tiles, the chip has "
            f"{hw.chip.tile_rows}x{hw.chip.tile_cols} = {have} (chip.tile_rows x chip.tile_cols); "
            "enlarge the chip or use larger crossbars / more PEs per tile")


@dataclass
class CostBatch:
    """Costs of a batch of networks; arrays have shape ``(n,)`` in crossnas units.

    Items the hardware cannot hold (``strict=False``) have infinite figures and their
    message in :attr:`errors`.
    """

    latency_ms: np.ndarray
    energy_mJ: np.ndarray
    edp_mJms: np.ndarray
    area_mm2: np.ndarray
    power_W: np.ndarray
    networks: list[Network] = field(repr=False, default_factory=list)
    hardware: list[HardwareConfig] = field(repr=False, default_factory=list)
    tot: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, K.N_TOT)))
    lay: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, K.N_LAY)))
    lay_off: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, dtype=np.int64))
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latency_ms)

    def detail(self, i: int) -> NetCost:
        """Full per-layer result of item ``i`` (MNSIM units)."""
        if i in self.errors:
            raise CrossnasError(self.errors[i])
        net, hw, t = self.networks[i], self.hardware[i], self.tot[i]
        rows = self.lay[self.lay_off[i]:self.lay_off[i + 1]]
        layers = []
        for lay, r in zip(net.layers, rows, strict=True):
            layers.append(LayerCost(
                layer=lay, pes=int(r[K.L_PES]), tiles=int(r[K.L_TILES]), crossbars=int(r[K.L_XBARS]),
                finish_ns=float(r[K.L_FIN]), energy={c: float(r[K.L_E0 + j]) for j, c in enumerate(COMPONENTS)},
                power={c: float(r[K.L_P0 + j]) for j, c in enumerate(COMPONENTS)}, area=float(r[K.L_AREA]),
                d_in=float(r[K.L_DIN]), d_trans=float(r[K.L_DTR]), adc_bits=int(r[K.L_ADCB]),
                adc_bits_needed=int(r[K.L_ADCN]), compute_ns=float(r[K.L_COMP]), movement_ns=float(r[K.L_MOVE]),
                dram_bits=float(r[K.L_DRAM]),
            ))
        tiles = int(t[K.T_TILES])
        parts = {c: tiles * v for c, v in P.tile_area_parts(hw).items()}
        if hw.cost_mode == "corrected":
            parts["buffer"] = float(t[K.T_AREA]) - tiles * P.hw_vector(hw)[K._TILE_FIXED_AREA]
        return NetCost(
            latency_ns=float(t[K.T_LAT]), energy_nJ=float(t[K.T_EN]), area_um2=float(t[K.T_AREA]),
            power_W=float(t[K.T_POW]), layers=layers,
            energy_parts={c: float(t[K.T_E0 + j]) for j, c in enumerate(COMPONENTS)}, area_parts=parts,
            power_parts={c: float(t[K.T_P0 + j]) for j, c in enumerate(COMPONENTS)}, tiles=tiles, mode=hw.cost_mode,
            buffers_bits={"pe_input": float(t[K.T_INBUF]), "tile_output": float(t[K.T_OUTBUF]),
                          "global": float(t[K.T_GBUF])},
            dram_bits=float(t[K.T_DRAM]), static_nJ=float(t[K.T_STATIC]),
        )

    def _columns(self) -> dict[str, list]:
        """Per-layer report columns of the whole batch as Python lists (built once: the
        CLI's ``--batch`` reports thousands of networks, and numpy's per-network slicing
        and conversion would cost more than the kernel)."""
        cols = self.__dict__.get("_report_columns")
        if cols is None:
            lay = self.lay
            fin = lay[:, K.L_FIN] * 1e-6
            # time a layer extends the schedule beyond everything before it (in its network)
            prev = np.zeros_like(fin)
            for a, b in zip(self.lay_off[:-1].tolist(), self.lay_off[1:].tolist(), strict=True):
                if b - a > 1:
                    prev[a + 1:b] = np.maximum.accumulate(fin[a:b - 1])
            cols = {
                "latency_ms": np.maximum(fin - prev, 0.0).tolist(), "finish_ms": fin.tolist(),
                "energy_mJ": (lay[:, K.L_E0:K.L_E0 + K.NC].sum(axis=1) * 1e-6).tolist(),
                "area_mm2": (lay[:, K.L_AREA] * 1e-6).tolist(),
                "power_W": lay[:, K.L_P0:K.L_P0 + K.NC].sum(axis=1).tolist(),
                "crossbars": lay[:, K.L_XBARS].astype(np.int64).tolist(),
                "pes": lay[:, K.L_PES].astype(np.int64).tolist(),
                "tiles": lay[:, K.L_TILES].astype(np.int64).tolist(),
                "compute_ms": (lay[:, K.L_COMP] * 1e-6).tolist(),
                "movement_ms": (lay[:, K.L_MOVE] * 1e-6).tolist(),
                "adc_bits": lay[:, K.L_ADCB].astype(np.int64).tolist(),
                "adc_bits_needed": lay[:, K.L_ADCN].astype(np.int64).tolist(),
                "dram_MB": (lay[:, K.L_DRAM] / 8e6).tolist(),
                "tot": self.tot.tolist(), "lay_off": self.lay_off.tolist(), "edp": self.edp_mJms.tolist(),
            }
            self.__dict__["_report_columns"] = cols
        return cols

    def _tile_area(self, hw: HardwareConfig) -> tuple[dict[str, float], float]:
        """One tile's area parts and fixed area of a configuration, memoised by identity
        (hashing and comparing a configuration costs more than a report)."""
        memo = self.__dict__.setdefault("_tile_area_memo", {})
        got = memo.get(id(hw))
        if got is None:
            got = memo[id(hw)] = (P.tile_area_parts(hw), float(P.hw_vector(hw)[K._TILE_FIXED_AREA]))
        return got

    def report(self, i: int) -> dict[str, Any]:
        """The JSON-able full result of item ``i`` (totals, per-layer, per-component).

        Built straight from the kernel's arrays (the CLI prints one per network).
        """
        if i in self.errors:
            raise CrossnasError(self.errors[i])
        net, hw = self.networks[i], self.hardware[i]
        cols = self._columns()
        t = cols["tot"][i]
        a, b = cols["lay_off"][i], cols["lay_off"][i + 1]
        corrected = hw.cost_mode == "corrected"
        names, types, _, _, couts, _, _, _, _, out_hws, w_bits, a_bits, _, _ = zip(*net.layers, strict=True)
        out_shapes = [[c, *hw_] for c, hw_ in zip(couts, out_hws, strict=True)]
        mapped = [ty == "conv" or ty == "fc" for ty in types]
        w_shown = [w if m else None for w, m in zip(w_bits, mapped, strict=True)]
        per_key = [cols[k][a:b] for k in _LAYER_REPORT_KEYS[5:]]
        layers = [  # a dict display with constant keys: faster than dict(zip(...)) for thousands of networks
            {"name": n, "type": ty, "w_bits": wb, "a_bits": ab, "out_shape": osh, "latency_ms": lat, "finish_ms": fin,
             "energy_mJ": en, "area_mm2": ar, "power_W": pw, "crossbars": xb, "pes": pe, "tiles": ti,
             "compute_ms": co, "movement_ms": mo}
            for n, ty, wb, ab, osh, lat, fin, en, ar, pw, xb, pe, ti, co, mo
            in zip(names, types, w_shown, a_bits, out_shapes, *per_key, strict=True)
        ]
        dram = cols["dram_MB"]
        adc, need = cols["adc_bits"], cols["adc_bits_needed"]
        for j, m in enumerate(mapped):
            item = layers[j]
            if m:
                item["adc_bits"] = adc[a + j]
                if corrected:
                    item["adc_bits_needed"] = need[a + j]
            if corrected:
                item["dram_MB"] = dram[a + j]
        tiles = int(t[K.T_TILES])
        tile_parts, fixed_area = self._tile_area(hw)
        parts = {c: tiles * v for c, v in tile_parts.items()}
        if corrected:
            parts["buffer"] = t[K.T_AREA] - tiles * fixed_area
        out: dict[str, Any] = {
            "latency_ms": t[K.T_LAT] * 1e-6, "energy_mJ": t[K.T_EN] * 1e-6,
            "edp_mJms": cols["edp"][i], "area_mm2": t[K.T_AREA] * 1e-6,
            "power_W": t[K.T_POW], "cost_mode": hw.cost_mode, "tiles": tiles,
            "crossbars": sum(cols["crossbars"][a:b]), "layers": layers,
            "components": {
                "energy_mJ": {c: v * 1e-6 for c, v in zip(COMPONENTS, t[K.T_E0:K.T_E0 + K.NC], strict=True)},
                "area_mm2": {k: v * 1e-6 for k, v in parts.items()},
                "power_W": dict(zip(COMPONENTS, t[K.T_P0:K.T_P0 + K.NC], strict=True)),
            },
        }
        if corrected:
            out["buffers_KB"] = {"pe_input": t[K.T_INBUF] / 8192.0, "tile_output": t[K.T_OUTBUF] / 8192.0,
                                 "global": t[K.T_GBUF] / 8192.0}
            out["dram_MB"] = t[K.T_DRAM] / 8e6
            out["static_energy_mJ"] = t[K.T_STATIC] * 1e-6
        return out


_LAYER_REPORT_KEYS = ("name", "type", "w_bits", "a_bits", "out_shape", "latency_ms", "finish_ms", "energy_mJ",
                      "area_mm2", "power_W", "crossbars", "pes", "tiles", "compute_ms", "movement_ms")
"""Keys of a per-layer report entry, in order (the display in :meth:`CostBatch.report`);
mapped layers add ``adc_bits`` (and, in the corrected mode, ``adc_bits_needed``), the
corrected mode adds ``dram_MB`` last."""


def _as_network(n: Network | dict) -> Network:
    return n if isinstance(n, Network) else network_from_dict(n)


def cost_networks(
    networks: Sequence[Network | dict], hardware: HardwareConfig | Sequence[HardwareConfig], *,
    strict: bool = True, backend: str = "auto",
) -> CostBatch:
    """Costs a batch of networks (a whole population) in one kernel call.

    Args:
        networks: networks or MNSIM-style dicts (see :func:`network_from_dict`).
        hardware: one configuration for all, or one per network.
        strict: raise on a network the hardware cannot hold (a kernel larger than the
            crossbar, more tiles than the chip); ``False`` gives it infinite figures and
            its message in :attr:`CostBatch.errors` (the search treats it as infeasible).
        backend: ``auto`` (compiled once worthwhile, see :data:`KERNEL_WARMUP`), ``numba``
            or ``python`` (the same kernel uncompiled).

    Returns:
        A :class:`CostBatch` with arrays of shape ``(n,)``.

    Raises:
        CrossnasError: bad networks or hardware; with ``strict``, a network that does not fit.
    """
    nets = [_as_network(n) for n in networks]
    if isinstance(hardware, HardwareConfig):
        hws = [hardware] * len(nets)
    else:
        hws = list(hardware)
        if len(hws) != len(nets):
            raise CrossnasError(f"hardware: {len(hws)} configurations for {len(nets)} networks; give one or one per network")
    if not nets:
        z = np.zeros(0)
        return CostBatch(z, z, z, z, z)
    tot, lay, lay_off = _run(nets, hws, backend)
    errors: dict[int, str] = {}
    for i in np.flatnonzero(tot[:, K.T_ERR] > 0).tolist():
        errors[i] = _error(nets[i], hws[i], tot[i])
        if strict:
            raise CrossnasError(errors[i])
        tot[i, [K.T_LAT, K.T_EN, K.T_AREA, K.T_POW]] = np.inf
    lat = tot[:, K.T_LAT] * 1e-6
    en = tot[:, K.T_EN] * 1e-6
    return CostBatch(lat, en, lat * en, tot[:, K.T_AREA] * 1e-6, tot[:, K.T_POW].copy(), nets, hws, tot, lay, lay_off,
                     errors)


def cost_one(net: Network, hw: HardwareConfig) -> NetCost:
    """Costs one network on one hardware configuration (MNSIM units, per-layer details)."""
    return cost_networks([net], [hw]).detail(0)


def cost_network(network: Network | dict, hardware: HardwareConfig | None = None) -> dict[str, Any]:
    """``cost_networks([network], [hardware]).report(0)``."""
    return cost_networks([network], hardware or HardwareConfig()).report(0)
