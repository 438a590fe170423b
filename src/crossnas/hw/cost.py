"""Latency, energy, area and power of a network on an analog PIM accelerator.

A behaviour-level model that reproduces MNSIM-2.0's figures (``cost_mode="mnsim"``,
the default) or a physically corrected variant (``cost_mode="corrected"``). See
``docs/cost_model.md`` for the formulas, MNSIM's quirks and the corrections.

Units inside: ns, nJ, um^2, W (MNSIM's). Results are reported in crossnas units:
``latency_ms``, ``energy_mJ``, ``edp_mJms``, ``area_mm2``, ``power_W``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.hw import params as P
from crossnas.hw.network import Layer, Network, network_from_dict
from crossnas.hw.placement import layer_distances, mesh_coords

COMPONENTS = ("crossbar", "ADC", "DAC", "digital", "buffer", "pooling")


@dataclass
class LayerCost:
    """Per-layer result (MNSIM units)."""

    layer: Layer
    pes: int = 0
    tiles: int = 0
    max_pe: int = 0
    max_row: int = 0
    max_col: int = 0
    crossbars: int = 0
    finish_ns: float = 0.0
    start_ns: float = 0.0
    energy: dict[str, float] = field(default_factory=dict)
    power: dict[str, float] = field(default_factory=dict)
    area: float = 0.0
    d_in: float = 0.0
    d_trans: float = 0.0
    lat_sum: dict[str, float] = field(default_factory=dict)


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


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _words(nbytes: float, width: int) -> float:
    """Buffer words (of ``width`` bits) holding ``nbytes`` bytes."""
    return float(math.ceil(nbytes * 8.0 / width - 1e-9))


def _mapping(layer: Layer, hp: P.HwParams) -> tuple[int, int, int, int, int]:
    """(mx, my, max_row, max_col, pes) of a conv/fc layer."""
    w = layer.w_bits
    slices = w - 1 if hp.polarity == 2 else w
    slices = max(slices, 1)
    if hp.corrected:
        slices = _ceil_div(slices, hp.cell_bits)
    mx = _ceil_div(slices, hp.groups) * _ceil_div(layer.cout, hp.xc)
    if layer.type == "conv":
        kk = layer.kernel * layer.kernel
        cx = hp.xr // kk
        if cx < 1:
            raise CrossnasError(
                f"crossbar.rows: {hp.xr} rows cannot hold one {layer.kernel}x{layer.kernel} kernel slice "
                f"({layer.name}); need at least {kk}"
            )
        my = _ceil_div(layer.cin, cx)
        max_row = min(cx, layer.cin) * kk
    else:
        my = _ceil_div(layer.cin, hp.xr)
        max_row = min(layer.cin, hp.xr)
    max_col = min(layer.cout, hp.xc)
    return mx, my, max_row, max_col, mx * my


@lru_cache(maxsize=65536)
def _conv_inbuf_words(layer: Layer, max_row: int, width: int) -> np.ndarray:
    """PE input-buffer words (write + read) of every output pixel of a conv layer."""
    ho, wo = layer.out_hw
    k, s, p, a = layer.kernel, layer.stride, layer.padding, layer.a_bits
    c_pe = max_row / (k * k)
    kp = max(k - p, 0)
    w_first = _words(c_pe * kp * kp * a / 8, width)
    w_rowstart = _words(c_pe * s * kp * a / 8, width)
    w_row0 = _words(c_pe * s * k * a / 8, width)
    w_other = _words(c_pe * s * s * a / 8, width)
    r_start = _words(max_row * a / 8, width)
    r_other = _words(s * k * c_pe * a / 8, width)
    grid = np.full((ho, wo), float(w_other + r_other))
    grid[0, :] = w_row0 + r_other
    grid[1:, 0] = w_rowstart + r_start
    grid[0, 0] = w_first + r_start
    out = grid.ravel()
    out.setflags(write=False)
    return out


@lru_cache(maxsize=65536)
def _conv_inbuf_split(layer: Layer, max_row: int, width: int) -> tuple[float, float]:
    """Total (write, read) words of the PE input buffer over a conv layer."""
    ho, wo = layer.out_hw
    k, s, p, a = layer.kernel, layer.stride, layer.padding, layer.a_bits
    c_pe = max_row / (k * k)
    kp = max(k - p, 0)
    w_first = float(_words(c_pe * kp * kp * a / 8, width))
    w_rowstart = float(_words(c_pe * s * kp * a / 8, width))
    w_row0 = float(_words(c_pe * s * k * a / 8, width))
    w_other = float(_words(c_pe * s * s * a / 8, width))
    r_start = float(_words(max_row * a / 8, width))
    r_other = float(_words(s * k * c_pe * a / 8, width))
    writes = w_first + (wo - 1) * w_row0 + (ho - 1) * w_rowstart + (ho - 1) * (wo - 1) * w_other
    reads = ho * r_start + (ho * wo - ho) * r_other
    return writes, reads


@lru_cache(maxsize=65536)
def _dependency_index(layer: Layer) -> np.ndarray:
    """For each output pixel, the flat index of the last input pixel it needs."""
    ho, wo = layer.out_hw
    h, w = layer.in_hw
    k, s, p = layer.kernel, layer.stride, layer.padding
    r = np.minimum(np.arange(ho) * s + k - 1 - p, h - 1)
    c = np.minimum(np.arange(wo) * s + k - 1 - p, w - 1)
    r = np.maximum(r, 0)
    c = np.maximum(c, 0)
    out = (r[:, None] * w + c[None, :]).ravel()
    out.setflags(write=False)
    return out


def _pipeline(arrival: np.ndarray, t: np.ndarray) -> np.ndarray:
    """finish(p) = max(arrival(p), finish(p-1)) + t(p), vectorised.

    With C the prefix sum of t: finish(p) = C(p) + max_{j<=p}(arrival(j) - C(j-1)).
    """
    c = np.cumsum(t)
    c_prev = c - t
    return c + np.maximum.accumulate(arrival - c_prev)


def cost_one(net: Network, hw: HardwareConfig) -> NetCost:
    """Costs one network on one hardware configuration (MNSIM units)."""
    hp = P.hw_params(hw)
    layers = net.layers
    nl = len(layers)
    T = hp.period
    width = hp.buf_width
    cyc = hp.buf_cycle
    results = [LayerCost(layer) for layer in layers]

    # ---- mapping -------------------------------------------------------------------
    ntile = np.zeros(nl, dtype=np.int64)
    for i, (lay, res) in enumerate(zip(layers, results, strict=True)):
        if lay.type in ("conv", "fc"):
            mx, my, mr, mc, pes = _mapping(lay, hp)
            res.pes, res.max_row, res.max_col = pes, mr, mc
            res.tiles = _ceil_div(pes, hp.pes)
            res.max_pe = min(pes, hp.pes)
            res.crossbars = pes * hp.groups * hp.polarity
        elif lay.type == "pooling":
            res.pes, res.tiles, res.max_pe = 1, 1, 1
        ntile[i] = res.tiles
    start = np.concatenate([[0], np.cumsum(ntile)[:-1]]).astype(np.int64)
    total_tiles = int(ntile.sum())

    # ---- placement ------------------------------------------------------------------
    consumers: list[list[int]] = [[] for _ in range(nl)]
    for i, lay in enumerate(layers):
        for j in lay.inputs:
            if j >= 0:
                consumers[j].append(i)
    is_sum = np.array([lay.type == "element_sum" for lay in layers])
    branch_out = np.array(
        [bool(consumers[i]) and all(is_sum[j] for j in consumers[i]) for i in range(nl)]
    )
    coords = mesh_coords(total_tiles, hp.mesh_rows, hp.mesh_cols, hp.connection)
    d_in, d_tr = layer_distances(coords, start, ntile, consumers, branch_out, is_sum, hp.mesh_rows / 2)

    # ---- latency (pipeline) -------------------------------------------------------
    finish: list[np.ndarray] = []
    energy_tot = dict.fromkeys(COMPONENTS, 0.0)
    power_tot = dict.fromkeys(COMPONENTS, 0.0)
    for i, (lay, res) in enumerate(zip(layers, results, strict=True)):
        res.d_in, res.d_trans = float(d_in[i]), float(d_tr[i])
        o = lay.a_bits
        a = lay.a_bits
        # finish times of the inputs (None: the network input, available at time 0)
        srcs = [finish[j] if j >= 0 else None for j in lay.inputs]
        src0 = srcs[0]
        e: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        pw: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        lat: dict[str, float] = {}
        if lay.type in ("conv", "fc"):
            mr, mc, mpe = res.max_row, res.max_col, res.max_pe
            row_groups = _ceil_div(mr, hp.dac_num)
            col_groups = _ceil_div(mc, hp.adc_num)
            n_pass = _ceil_div(a, hp.dac_bits) * row_groups * col_groups
            g = math.ceil(math.log2(mpe)) if mpe > 1 else 0
            tl = math.ceil(math.log2(hp.pes)) if hp.pes > 1 else 0
            t_dac = n_pass * hp.t_dac
            t_xbar = n_pass * hp.read_ns
            t_adc = n_pass * hp.t_adc
            t_ireg = row_groups * col_groups * T + n_pass * T
            t_shift = n_pass * T
            t_demux = n_pass * P.DEMUX_NS * hp.m_in
            t_mux = n_pass * P.MUX_NS * hp.m_out
            t_adder = col_groups * (math.ceil(math.log2(hp.groups)) if hp.groups > 1 else 0) * T
            t_oreg = col_groups * T
            t_joint = g * T
            t_digital = t_ireg + t_shift + t_demux + t_mux + t_adder + t_oreg + t_joint
            t_intra = max(tl * (hp.adc_bits + g) - g * (g + 1) / 2, 0) * mc / hp.bw_intra
            w_out = float(_words((hp.adc_bits + g) * mc * mpe / 8, width))
            r_merge = float(_words(mc * o * mpe / 8, width))
            merge = d_in[i] * (T + mc * mpe * o / hp.bw_inter)
            transfer = d_tr[i] * lay.cout * o / hp.bw_inter
            fixed = t_dac + t_xbar + t_adc + t_digital + t_intra + w_out * cyc + r_merge * cyc + merge + transfer
            if lay.type == "conv":
                inbuf = _conv_inbuf_words(lay, mr, width) * cyc
                t = fixed + inbuf
                dep = _dependency_index(lay)
                arrival = src0[dep] if src0 is not None else np.zeros(len(t))
                f = _pipeline(arrival, t)
                in_w, in_r = _conv_inbuf_split(lay, mr, width)
            else:
                in_w = float(_words(lay.cin * a / 8, width))
                in_r = float(_words(mr * a / 8, width))
                t = np.array([fixed + (in_w + in_r) * cyc])
                begin = float(src0.max()) if src0 is not None else 0.0
                f = begin + t
            npx = len(t)
            finish.append(f)
            nb_w = in_w + npx * w_out
            nb_r = in_r + npx * r_merge
            lat = {
                "buffer": (nb_w + nb_r) * cyc, "DAC": npx * t_dac, "xbar": npx * t_xbar, "ADC": npx * t_adc,
                "digital": npx * t_digital, "intra_tile": npx * t_intra,
                "inter_tile": npx * (r_merge * cyc + merge + transfer),
            }
            n_pe = res.tiles * mpe
            if hp.corrected:
                # every column read is converted once per pass; every driven row has a DAC
                adc_active = min(hp.adc_num, mc)
                dac_active = min(hp.dac_num, mr)
            else:
                # MNSIM: ceil(max_col / omux) ADCs, fewer than the columns read when omux > 1
                adc_active = _ceil_div(mc, hp.omux)
                dac_active = _ceil_div(mr, hp.idemux)
            pw["ADC"] = n_pe * hp.groups * adc_active * hp.p_adc
            pw["DAC"] = n_pe * hp.groups * dac_active * hp.p_dac
            pw["crossbar"] = n_pe * hp.groups * hp.polarity * mr * mc * hp.cell_power / (hp.idemux * hp.omux)
            p_shift = n_pe * hp.groups * adc_active * P.SHIFTREG_POWER_W
            p_oreg = n_pe * hp.groups * adc_active * P.REG_POWER_W
            p_ireg = n_pe * hp.groups * dac_active * P.REG_POWER_W
            p_mux = n_pe * hp.groups * adc_active * P.mux_transistors(hp.omux) * 1.2e-8
            p_demux = n_pe * hp.groups * dac_active * P.mux_transistors(hp.idemux) * 1.2e-8
            p_joint = res.tiles * max(mpe - 1, 0) * adc_active * P.JOINT_POWER_W
            pw["digital"] = p_shift + p_oreg + p_ireg + p_mux + p_demux + p_joint
            p_bufr = res.tiles * (mpe + 1) * hp.buf_p_read
            p_bufw = res.tiles * (mpe + 1) * hp.buf_p_write
            pw["buffer"] = p_bufr + p_bufw
            e["ADC"] = pw["ADC"] * lat["ADC"]
            e["DAC"] = pw["DAC"] * lat["DAC"]
            e["crossbar"] = pw["crossbar"] * lat["xbar"]
            e["digital"] = npx * (
                p_shift * t_shift + p_oreg * t_oreg + p_ireg * t_ireg + p_mux * t_mux + p_demux * t_demux
                + p_joint * t_joint
            )
            e["buffer"] = p_bufr * nb_r * cyc + p_bufw * nb_w * cyc
        elif lay.type == "pooling":
            c = lay.cin
            t_pool = P.POOL_CYCLE_NS * _ceil_div(c, 64) * _ceil_div(lay.kernel * lay.kernel, 9)
            words = float(_words(c * a / 8, width))
            t_buf = 10 * words * cyc
            transfer = d_tr[i] * lay.cout * o / hp.bw_inter + words * cyc
            t = np.full(lay.n_out_pixels, t_pool + t_buf + transfer)
            dep = _dependency_index(lay)
            arrival = src0[dep] if src0 is not None else np.zeros(len(t))
            f = _pipeline(arrival, t)
            finish.append(f)
            npx = len(t)
            lat = {"buffer": npx * t_buf, "pooling": npx * t_pool, "inter_tile": npx * transfer}
            pw["pooling"] = P.POOL_POWER_W
            pw["buffer"] = hp.buf_p_read + hp.buf_p_write
            e["pooling"] = pw["pooling"] * lat["pooling"]
            e["buffer"] = (hp.buf_p_read + hp.buf_p_write) / 2 * lat["buffer"]
        else:  # element_sum
            c = lay.cin
            words = float(_words(c * a / 8, width))
            t_buf = 2 * len(lay.inputs) * words * cyc
            transfer = d_tr[i] * c * o / hp.bw_inter
            t = np.full(lay.n_out_pixels, P.SUM_CYCLE_NS + t_buf + transfer)
            arrival = np.zeros(len(t))
            for s_ in srcs:
                if s_ is not None:
                    arrival = np.maximum(arrival, s_)
            f = _pipeline(arrival, t)
            finish.append(f)
            npx = len(t)
            lat = {"buffer": npx * t_buf, "digital": npx * P.SUM_CYCLE_NS, "inter_tile": npx * transfer}
        res.finish_ns = float(f.max()) if len(f) else 0.0
        res.lat_sum = lat
        res.energy = e
        res.power = pw
        res.area = res.tiles * hp.tile_area
        for k_ in COMPONENTS:
            energy_tot[k_] += e[k_]
            power_tot[k_] += pw[k_]

    latency = max(r.finish_ns for r in results)
    area_parts = {k_: total_tiles * v for k_, v in hp.area_parts.items()}
    energy = sum(energy_tot.values())
    power = sum(power_tot.values())
    if hp.corrected:
        power_tot = {k_: v / latency for k_, v in energy_tot.items()}
        power = energy / latency
    return NetCost(
        latency_ns=latency, energy_nJ=energy, area_um2=total_tiles * hp.tile_area, power_W=power,
        layers=results, energy_parts=energy_tot, area_parts=area_parts, power_parts=power_tot,
        tiles=total_tiles, mode=hw.cost_mode,
    )


# ---------------------------------------------------------------------------- batch API
@dataclass
class CostBatch:
    """Costs of a batch of networks; arrays have shape ``(n,)`` in crossnas units.

    Per-layer details for :meth:`report` are computed on first request (population
    batches cost their totals in one vectorised pass).
    """

    latency_ms: np.ndarray
    energy_mJ: np.ndarray
    edp_mJms: np.ndarray
    area_mm2: np.ndarray
    power_W: np.ndarray
    networks: list[Network] = field(repr=False, default_factory=list)
    hardware: list[HardwareConfig] = field(repr=False, default_factory=list)
    _details: dict[int, NetCost] = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self.latency_ms)

    def detail(self, i: int) -> NetCost:
        """Full per-layer result of item ``i`` (MNSIM units)."""
        if i not in self._details:
            self._details[i] = cost_one(self.networks[i], self.hardware[i])
        return self._details[i]

    def report(self, i: int) -> dict[str, Any]:
        """The JSON-able full result of item ``i`` (totals, per-layer, per-component)."""
        d = self.detail(i)
        layers: list[dict[str, Any]] = []
        for r in d.layers:
            lay = r.layer
            layers.append({
                "name": lay.name, "type": lay.type, "w_bits": lay.w_bits if lay.type in ("conv", "fc") else None,
                "a_bits": lay.a_bits, "out_shape": [lay.cout, *lay.out_hw],
                "latency_ms": 0.0, "finish_ms": r.finish_ns * 1e-6,
                "energy_mJ": sum(r.energy.values()) * 1e-6, "area_mm2": r.area * 1e-6,
                "power_W": sum(r.power.values()), "crossbars": r.crossbars, "pes": r.pes, "tiles": r.tiles,
            })
        prev = 0.0
        for item in layers:  # time this layer extends the schedule beyond everything before it
            item["latency_ms"] = max(item["finish_ms"] - prev, 0.0)
            prev = max(prev, item["finish_ms"])
        return {
            "latency_ms": float(self.latency_ms[i]), "energy_mJ": float(self.energy_mJ[i]),
            "edp_mJms": float(self.edp_mJms[i]), "area_mm2": float(self.area_mm2[i]),
            "power_W": float(self.power_W[i]), "cost_mode": d.mode, "tiles": d.tiles,
            "crossbars": int(sum(r.crossbars for r in d.layers)), "layers": layers,
            "components": {
                "energy_mJ": {k: v * 1e-6 for k, v in d.energy_parts.items()},
                "area_mm2": {k: v * 1e-6 for k, v in d.area_parts.items()},
                "power_W": dict(d.power_parts),
            },
        }


FAST_MIN_BATCH = 8
"""Without the compiled kernel, batches at least this large use the numpy population path."""
KERNEL_WARMUP = 32
"""``auto`` loads the compiled kernel (importing numba and loading or compiling the kernel:
about a second, or tens of seconds when nothing is cached yet) only once a call costs, or
the process has costed, this many networks; a one-off CLI call never pays for it."""
_costed = 0  # networks costed by this process so far (the warm-up counter)

BACKENDS = ("auto", "numba", "numpy", "reference")


def _as_network(n: Network | dict) -> Network:
    return n if isinstance(n, Network) else network_from_dict(n)


def _totals(
    nets: list[Network], hws: list[HardwareConfig], backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, NetCost]]:
    """Totals in MNSIM units (latency ns, energy nJ, area um^2, power W) and any per-network
    details computed on the way.

    Args:
        backend: ``auto`` (compiled kernel when numba works, else numpy for batches of at
            least :data:`FAST_MIN_BATCH`, else the per-network model; see :data:`KERNEL_WARMUP`),
            ``numba``, ``numpy`` (population arrays) or ``reference`` (:func:`cost_one` per
            network). Items whose hardware the batched paths do not support always use
            ``cost_one``.
    """
    from crossnas.hw import fast as F

    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r}; allowed: {', '.join(BACKENDS)}")
    n = len(nets)
    lat, en, ar, pw = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    details: dict[int, NetCost] = {}
    todo = list(range(n))
    global _costed
    _costed += n
    if backend == "auto":
        warm = F.kernel_loaded() or _costed >= KERNEL_WARMUP
        backend = "numba" if warm and F.load_kernel() is not None else "auto"
        strict = False
    else:
        strict = True
    done = False
    if backend == "numba":
        vecs = [F.hw_vector(h) for h in hws]
        idx = [i for i, v in enumerate(vecs) if v is not None]
        res = None
        try:
            if idx:
                sub = nets if len(idx) == n else [nets[i] for i in idx]
                res = F.kernel_totals(sub, [vecs[i] for i in idx])  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a broken numba install must not break costing
            if strict:
                raise
            F._kernel_failed(exc)
            backend = "auto"
        else:
            done = True
            if res is not None:
                for r in np.flatnonzero(res[:, 5] >= 0).tolist():  # unmappable layer: the reference raises
                    details[idx[r]] = cost_one(nets[idx[r]], hws[idx[r]])
                lat[idx], en[idx], ar[idx], pw[idx] = res[:, 0], res[:, 1], res[:, 2], res[:, 3]
                ok = set(idx) - set(details)
                todo = [i for i in range(n) if i not in ok]
    if not done and (backend == "numpy" or (backend == "auto" and n >= FAST_MIN_BATCH)):
        idx = [i for i in range(n) if F.hw_supported(hws[i])]
        if idx:
            lat[idx], en[idx], ar[idx], pw[idx], _ = F.fast_totals([nets[i] for i in idx], [hws[i] for i in idx])
            todo = [i for i in range(n) if not F.hw_supported(hws[i])]
    for i in todo:
        d = details.get(i) or cost_one(nets[i], hws[i])
        details[i] = d
        lat[i], en[i], ar[i], pw[i] = d.latency_ns, d.energy_nJ, d.area_um2, d.power_W
    return lat, en, ar, pw, details


def cost_networks(
    networks: Sequence[Network | dict], hardware: HardwareConfig | Sequence[HardwareConfig]
) -> CostBatch:
    """Costs a batch of networks (a whole population) in one call.

    Args:
        networks: networks or MNSIM-style dicts (see :func:`network_from_dict`).
        hardware: one configuration for all, or one per network.

    Returns:
        A :class:`CostBatch` with arrays of shape ``(n,)``.
    """
    nets = [_as_network(n) for n in networks]
    if isinstance(hardware, HardwareConfig):
        hws = [hardware] * len(nets)
    else:
        hws = list(hardware)
        if len(hws) != len(nets):
            raise CrossnasError(f"hardware: {len(hws)} configurations for {len(nets)} networks; give one or one per network")
    lat_ns, en_nj, ar_um2, pw, details = _totals(nets, hws)
    lat = lat_ns * 1e-6
    en = en_nj * 1e-6
    return CostBatch(lat, en, lat * en, ar_um2 * 1e-6, pw, nets, hws, details)


def cost_network(network: Network | dict, hardware: HardwareConfig | None = None) -> dict[str, Any]:
    """``cost_networks([network], [hardware]).report(0)``."""
    return cost_networks([network], hardware or HardwareConfig()).report(0)
