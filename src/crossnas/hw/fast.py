"""Population-vectorised totals: the same model as :func:`crossnas.hw.cost.cost_one`,
computed for many (network, hardware) pairs at once.

Two back-ends give the same numbers (to floating-point rounding; tested):

* ``numba`` (default when numba imports): :func:`kernel_totals` hands flat arrays to one
  compiled kernel (:mod:`crossnas.hw._jit`) that walks every layer, tile and output pixel
  of every network. The per-network inputs are cached: the layer table on the
  :class:`Network` object (:func:`plan_of`), the hardware vector per configuration
  (:func:`hw_vector`). Compiled once and cached on disk (``cache=True``).
* ``numpy`` (fallback): :func:`fast_totals`. Every layer of every network is a row of one
  flat table; mapping, placement distances, per-pixel times and energies are elementwise
  over that table (or over the flat list of all tiles / all output pixels). Only the pixel
  pipeline needs an order: layer ``k`` of every network is processed in the same step
  ("wave"), each wave a handful of numpy calls over all its pixels, with the recurrence
  ``finish(p) = C(p) + max_{j<=p}(arrival(j) - C(j-1))`` evaluated per layer segment
  (segmented prefix sums; the segmented running max adds a per-segment offset larger than
  any value range).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from crossnas.config.hardware import HardwareConfig
from crossnas.errors import CrossnasError
from crossnas.hw import params as P
from crossnas.hw.network import Network
from crossnas.hw.placement import spiral_order

log = logging.getLogger(__name__)

_TYPE = {"conv": 0, "fc": 1, "pooling": 2, "element_sum": 3}
# per-layer integer columns
_C = ("type", "cin", "cout", "k", "s", "p", "ih", "iw", "oh", "ow", "w", "a", "in0", "in1", "nin", "pos", "last")
_COL = {name: i for i, name in enumerate(_C)}
_STRUCT_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_HP_FIELDS = ("xr", "xc", "adc_num", "dac_num", "omux", "idemux", "m_out", "m_in", "adc_bits", "t_adc", "p_adc",
              "dac_bits", "t_dac", "p_dac", "read_ns", "cell_power", "cell_bits", "polarity", "groups", "pes",
              "period", "bw_inter", "bw_intra", "buf_cycle", "buf_width", "buf_p_read", "buf_p_write", "tile_area",
              "mesh_rows", "corrected", "mux_p_out", "mux_p_in")
HW_FIELDS = _HP_FIELDS
"""Columns of a hardware vector (:func:`hw_vector`), in the kernel's order."""
KERNEL_CONSTS = np.array([P.DEMUX_NS, P.MUX_NS, P.POOL_CYCLE_NS, P.SUM_CYCLE_NS, P.POOL_POWER_W,
                          P.SHIFTREG_POWER_W, P.REG_POWER_W, P.JOINT_POWER_W])
"""Model constants passed to the compiled kernel (never baked into its cached code)."""
_PLAN_ATTR = "_crossnas_kernel_plan"
_HW_CACHE: OrderedDict[int, tuple[HardwareConfig, np.ndarray | None]] = OrderedDict()
_HW_CACHE_SIZE = 4096
_KERNEL: Any = None
_KERNEL_STATE = "unloaded"  # unloaded | ok | missing | failed


def _structure(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """(layer table (L, len(_C)) int64, consumer edges (E, 2) local (producer, consumer))."""
    key = net.key
    hit = _STRUCT_CACHE.get(key)
    if hit is not None:
        _STRUCT_CACHE.move_to_end(key)
        return hit
    n = len(net.layers)
    tab = np.zeros((n, len(_C)), dtype=np.int64)
    edges = []
    for i, lay in enumerate(net.layers):
        ins = list(lay.inputs) + [-1]
        tab[i] = (_TYPE[lay.type], lay.cin, lay.cout, lay.kernel, lay.stride, lay.padding, lay.in_hw[0], lay.in_hw[1],
                  lay.out_hw[0], lay.out_hw[1], lay.w_bits, lay.a_bits, ins[0], ins[1] if len(lay.inputs) > 1 else -1,
                  len(lay.inputs), i, int(i == n - 1))
        for j in lay.inputs:
            if j >= 0:
                edges.append((j, i))
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    _STRUCT_CACHE[key] = (tab, e)
    if len(_STRUCT_CACHE) > 8192:
        _STRUCT_CACHE.popitem(last=False)
    return tab, e


@lru_cache(maxsize=4096)
def _template(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel of a layer shape: (dependency index into its input, pixel class, index)."""
    typ, oh, ow, ih, iw, k, s, p = shape
    n = 1 if typ == 1 else oh * ow
    loc = np.arange(n)
    i = loc // ow
    j = loc - i * ow
    cls = np.where(loc == 0, 0, np.where(i == 0, 1, np.where(j == 0, 2, 3)))
    if typ == 3:
        q = loc.copy()
    elif typ == 1:
        q = np.zeros(1, dtype=np.int64)
        cls = np.zeros(1, dtype=np.int64)
    else:
        rq = np.clip(i * s + k - 1 - p, 0, ih - 1)
        cq = np.clip(j * s + k - 1 - p, 0, iw - 1)
        q = rq * iw + cq
    for arr in (q, cls, loc):
        arr.setflags(write=False)
    return q, cls, loc


def fast_supported(hws: Sequence[HardwareConfig]) -> bool:
    """Every configuration suits the batched paths (:func:`hw_supported`)."""
    return all(hw_supported(h) for h in hws)


def hw_supported(hw: HardwareConfig) -> bool:
    """The batched paths place tiles in MNSIM's default spiral on a square mesh of even side."""
    c = hw.chip
    return c.tile_connection == 2 and c.tile_rows == c.tile_cols and c.tile_rows % 2 == 0


# ---------------------------------------------------------------------------- numba path
def plan_of(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's view of a network, cached on the (immutable) network object.

    Returns:
        ``(table, inputs)``: ``table`` int64 ``(L, 14)`` with columns type (0 conv, 1 fc,
        2 pooling, 3 element_sum), cin, cout, kernel, stride, padding, in H, in W, out H,
        out W, weight bits, activation bits, first entry in ``inputs``, number of inputs;
        ``inputs`` int64 ``(I,)`` input-layer indices (``-1`` = the network input).
    """
    plan = net.__dict__.get(_PLAN_ATTR)
    if plan is None:
        rows = []
        ins: list[int] = []
        for lay in net.layers:
            rows.append((_TYPE[lay.type], lay.cin, lay.cout, lay.kernel, lay.stride, lay.padding, lay.in_hw[0],
                         lay.in_hw[1], lay.out_hw[0], lay.out_hw[1], lay.w_bits, lay.a_bits, len(ins), len(lay.inputs)))
            ins.extend(lay.inputs)
        plan = (np.array(rows, dtype=np.int64).reshape(-1, 14), np.array(ins, dtype=np.int64))
        # a frozen dataclass: write the cache entry directly (as functools.cached_property does)
        net.__dict__[_PLAN_ATTR] = plan
    return plan


def hw_vector(hw: HardwareConfig) -> np.ndarray | None:
    """The kernel's hardware vector (columns :data:`HW_FIELDS`), or ``None`` when the
    configuration needs the per-network model (placement other than the square spiral).

    Cached by object identity (the cache holds the object, so its id stays unique), then
    by value through :func:`crossnas.hw.params.hw_params`.
    """
    hit = _HW_CACHE.get(id(hw))
    if hit is not None and hit[0] is hw:
        return hit[1]
    vec: np.ndarray | None = None
    if hw_supported(hw):
        hp = P.hw_params(hw)
        vals = []
        for f in _HP_FIELDS:
            if f == "mux_p_out":
                vals.append(P.mux_transistors(hp.omux) * 1.2e-8)
            elif f == "mux_p_in":
                vals.append(P.mux_transistors(hp.idemux) * 1.2e-8)
            else:
                vals.append(float(getattr(hp, f)))
        vec = np.array(vals, dtype=float)
        vec.setflags(write=False)
    _HW_CACHE[id(hw)] = (hw, vec)
    if len(_HW_CACHE) > _HW_CACHE_SIZE:
        _HW_CACHE.popitem(last=False)
    return vec


def load_kernel() -> Any:
    """The compiled kernel, or ``None`` when numba cannot be imported (logged once)."""
    global _KERNEL, _KERNEL_STATE
    if _KERNEL_STATE == "unloaded":
        try:
            from crossnas.hw._jit import kernel
        except ImportError as exc:
            log.info("numba unavailable (%s): using the numpy cost-model path", exc)
            _KERNEL_STATE = "missing"
        else:
            _KERNEL, _KERNEL_STATE = kernel, "ok"
    return _KERNEL if _KERNEL_STATE == "ok" else None


def kernel_loaded() -> bool:
    """Whether the compiled kernel has been loaded (and not failed) in this process."""
    return _KERNEL_STATE == "ok"


def _kernel_failed(exc: BaseException) -> None:
    global _KERNEL_STATE
    log.warning("compiled cost-model kernel failed (%s: %s); using the numpy path", type(exc).__name__, exc)
    _KERNEL_STATE = "failed"


def kernel_totals(nets: Sequence[Network], vecs: Sequence[np.ndarray]) -> np.ndarray:
    """Totals through the compiled kernel.

    Args:
        nets: networks.
        vecs: their hardware vectors (:func:`hw_vector`, none of them ``None``).

    Returns:
        float64 ``(n, 6)``: latency_ns, energy_nJ, area_um2, power_W, tiles, and the index
        of a conv layer the crossbar cannot hold (``-1`` when every layer maps).
    """
    kern = load_kernel()
    if kern is None:
        raise RuntimeError("the compiled cost-model kernel is unavailable (numba missing)")
    n = len(nets)
    if n == 1:
        tab, ins = plan_of(nets[0])
        lay_off = np.array([0, len(tab)], dtype=np.int64)
        in_off = np.array([0, len(ins)], dtype=np.int64)
        hwm = vecs[0][None, :].copy()  # writable, like np.stack's result: one compiled signature
    else:
        plans = [plan_of(x) for x in nets]
        tab = np.concatenate([pl[0] for pl in plans])
        ins = np.concatenate([pl[1] for pl in plans])
        lay_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(pl[0]) for pl in plans], out=lay_off[1:])
        in_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(pl[1]) for pl in plans], out=in_off[1:])
        hwm = np.stack(vecs)
    out = np.empty((n, 6))
    kern(tab, ins, lay_off, in_off, hwm, KERNEL_CONSTS, out)
    return out


def _ceil(x: np.ndarray) -> np.ndarray:
    return np.ceil(x - 1e-9)


def _words(bits: np.ndarray, width: np.ndarray) -> np.ndarray:
    return _ceil(bits / width)


def fast_totals(nets: Sequence[Network], hws: Sequence[HardwareConfig]) -> tuple[np.ndarray, ...]:
    """Totals for each (network, hardware) pair in MNSIM units (pure numpy).

    Returns:
        ``(latency_ns, energy_nJ, area_um2, power_W, tiles)`` arrays of shape ``(n,)``.
    """
    nn_ = len(nets)
    structs = [_structure(n) for n in nets]
    hps = [P.hw_params(h) for h in hws]
    # ---- per-network hardware columns ------------------------------------------------
    hpv = {f: np.array([getattr(hp, f) if f not in ("mux_p_out", "mux_p_in") else
                        P.mux_transistors(hp.omux if f == "mux_p_out" else hp.idemux) * 1.2e-8 for hp in hps],
                       dtype=float) for f in _HP_FIELDS}
    nlay = np.array([len(s[0]) for s in structs], dtype=np.int64)
    tab = np.concatenate([s[0] for s in structs])
    lay_off = np.concatenate([[0], np.cumsum(nlay)[:-1]])
    net_of = np.repeat(np.arange(nn_), nlay)
    L = len(tab)

    def col(name: str) -> np.ndarray:
        return tab[:, _COL[name]]

    def H(f: str) -> np.ndarray:
        return hpv[f][net_of]

    typ = col("type")
    is_conv, is_fc, is_pool, is_sum = typ == 0, typ == 1, typ == 2, typ == 3
    is_w = is_conv | is_fc
    cin, cout, k, s, p = col("cin"), col("cout"), col("k"), col("s"), col("p")
    a = col("a").astype(float)
    xr, xc = H("xr"), H("xc")
    corrected = H("corrected") > 0

    # ---- mapping ---------------------------------------------------------------------
    slices = np.where(H("polarity") == 2, col("w") - 1, col("w")).astype(float)
    slices = np.maximum(slices, 1)
    slices = np.where(corrected, np.ceil((np.where(H("polarity") == 2, col("w") - 1, col("w"))).clip(1)
                                         / H("cell_bits")), slices)
    kk = (k * k).astype(float)
    cx = np.floor(xr / kk)
    if np.any(is_conv & (cx < 1)):
        i = int(np.argmax(is_conv & (cx < 1)))
        raise CrossnasError(
            f"crossbar.rows: {int(xr[i])} rows cannot hold one {int(k[i])}x{int(k[i])} kernel slice; need at least {int(kk[i])}"
        )
    cx = np.maximum(cx, 1)
    mx = np.ceil(slices / H("groups")) * np.ceil(cout / xc)
    my = np.where(is_conv, np.ceil(cin / cx), np.ceil(cin / xr))
    mr = np.where(is_conv, np.minimum(cx, cin) * kk, np.minimum(cin, xr))
    mc = np.minimum(cout, xc).astype(float)
    pes_l = np.where(is_w, mx * my, np.where(is_pool, 1.0, 0.0))
    npe = H("pes")
    tiles = np.where(is_w, np.ceil(pes_l / npe), np.where(is_pool, 1.0, 0.0))
    mpe = np.where(is_w, np.minimum(pes_l, npe), np.where(is_pool, 1.0, 0.0))
    mr = np.where(is_w, mr, 0.0)
    mc = np.where(is_w, mc, 0.0)
    tiles_i = tiles.astype(np.int64)
    net_tiles = np.add.reduceat(tiles_i, lay_off) if L else np.zeros(nn_, dtype=np.int64)

    # ---- placement -------------------------------------------------------------------
    total_t = int(tiles_i.sum())
    tile_layer = np.repeat(np.arange(L), tiles_i)
    net_tile_off = np.concatenate([[0], np.cumsum(net_tiles)[:-1]])
    tile_local = np.arange(total_t) - np.repeat(net_tile_off, net_tiles)
    sp = spiral_order(int(tile_local.max()) + 1 if total_t else 1)
    tx = sp[tile_local, 0]
    ty = sp[tile_local, 1]
    tu, tv = tx + ty, tx - ty
    big = int(sp.max()) + 2
    trm = tx * big + ty
    has = tiles_i > 0
    lay_tile_start = np.concatenate([[0], np.cumsum(tiles_i)[:-1]])
    idx_has = np.flatnonzero(has)
    starts = lay_tile_start[idx_has]
    inf = 1 << 40
    umin = np.full(L, inf)
    umax = np.full(L, -inf)
    vmin = np.full(L, inf)
    vmax = np.full(L, -inf)
    firstrm = np.full(L, inf)
    if len(starts):
        umin[idx_has] = np.minimum.reduceat(tu, starts)
        umax[idx_has] = np.maximum.reduceat(tu, starts)
        vmin[idx_has] = np.minimum.reduceat(tv, starts)
        vmax[idx_has] = np.maximum.reduceat(tv, starts)
        firstrm[idx_has] = np.minimum.reduceat(trm, starts)
    # consumer edges (global layer ids)
    e_list = [s[1] + off for s, off in zip(structs, lay_off, strict=True)]
    edges = np.concatenate(e_list) if e_list else np.zeros((0, 2), dtype=np.int64)
    prod, cons = edges[:, 0], edges[:, 1]
    n_cons = np.bincount(prod, minlength=L)
    n_cons_sum = np.bincount(prod, weights=is_sum[cons].astype(float), minlength=L)
    branch = (n_cons > 0) & (n_cons_sum == n_cons)
    cumin = np.full(L, inf)
    cumax = np.full(L, -inf)
    cvmin = np.full(L, inf)
    cvmax = np.full(L, -inf)
    np.minimum.at(cumin, prod, umin[cons])
    np.maximum.at(cumax, prod, umax[cons])
    np.minimum.at(cvmin, prod, vmin[cons])
    np.maximum.at(cvmax, prod, vmax[cons])
    has_dst = cumin < inf
    last = col("last") > 0
    grow = (hpv["mesh_rows"] / 2).astype(np.int64)[net_of]
    tl_ = tile_layer
    spread = np.maximum(np.maximum(tu - umin[tl_], umax[tl_] - tu), np.maximum(tv - vmin[tl_], vmax[tl_] - tv))
    out_b = np.abs(tx - grow[tl_]) + ty
    out_c = np.where(has_dst[tl_], np.maximum(np.maximum(tu - cumin[tl_], cumax[tl_] - tu),
                                              np.maximum(tv - cvmin[tl_], cvmax[tl_] - tv)), 0)
    out = np.where(last[tl_], 0, np.where(branch[tl_], out_b, out_c))
    score = spread + out
    s1 = big * big + 1
    key = (score * s1 + trm) * 4096 + spread
    d_in = np.zeros(L)
    d_tr = np.zeros(L)
    if len(starts):
        kmin = np.minimum.reduceat(key, starts)
        sp_sel = kmin % 4096
        sc_sel = (kmin // 4096) // s1
        d_in[idx_has] = sp_sel
        d_tr[idx_has] = sc_sel - sp_sel
    # element_sum: first row-major tile of each consumer, distance to the global buffer
    sum_edges = is_sum[prod] & has[cons] & ~last[prod]
    if np.any(sum_edges):
        fr = firstrm[cons[sum_edges]]
        dist = np.abs(fr // big - grow[prod[sum_edges]]) + fr % big
        tmp = np.zeros(L)
        np.maximum.at(tmp, prod[sum_edges], dist.astype(float))
        d_tr = np.where(is_sum, tmp, d_tr)

    # ---- per-layer times (ns) ----------------------------------------------------------
    T = H("period")
    width = H("buf_width")
    cyc = H("buf_cycle")
    A = H("adc_bits")
    o = a
    rg = np.ceil(mr / H("dac_num"))
    cg = np.ceil(mc / H("adc_num"))
    n_pass = np.ceil(a / H("dac_bits")) * rg * cg
    g = np.where(mpe > 1, np.ceil(np.log2(np.maximum(mpe, 1))), 0.0)
    tl = np.where(npe > 1, np.ceil(np.log2(np.maximum(npe, 1))), 0.0)
    addlog = np.where(H("groups") > 1, np.ceil(np.log2(np.maximum(H("groups"), 1))), 0.0)
    t_ireg = rg * cg * T + n_pass * T
    t_shift = n_pass * T
    t_demux = n_pass * P.DEMUX_NS * H("m_in")
    t_mux = n_pass * P.MUX_NS * H("m_out")
    t_oreg = cg * T
    t_joint = g * T
    t_digital = t_ireg + t_shift + t_demux + t_mux + cg * addlog * T + t_oreg + t_joint
    t_intra = np.maximum(tl * (A + g) - g * (g + 1) / 2, 0) * mc / H("bw_intra")
    w_out = _words((A + g) * mc * mpe, width)
    r_merge = _words(mc * o * mpe, width)
    merge = d_in * (T + mc * mpe * o / H("bw_inter"))
    transfer = d_tr * cout * o / H("bw_inter")
    comp = n_pass * (H("t_dac") + H("read_ns") + H("t_adc"))
    fixed_w = comp + t_digital + t_intra + (w_out + r_merge) * cyc + merge + transfer
    # conv input-buffer words by pixel class
    kf, sf, pf = k.astype(float), s.astype(float), p.astype(float)
    c_pe = np.where(is_conv, mr / kk, 0.0)
    kp = np.maximum(kf - pf, 0)
    w_first = _words(c_pe * kp * kp * a, width)
    w_rowstart = _words(c_pe * sf * kp * a, width)
    w_row0 = _words(c_pe * sf * kf * a, width)
    w_other = _words(c_pe * sf * sf * a, width)
    r_start = _words(mr * a, width)
    r_other = _words(sf * kf * c_pe * a, width)
    oh, ow = col("oh").astype(float), col("ow").astype(float)
    npx = np.where(is_fc, 1.0, oh * ow)
    in_w = np.where(is_conv, w_first + (ow - 1) * w_row0 + (oh - 1) * w_rowstart + (oh - 1) * (ow - 1) * w_other,
                    _words(cin * a, width))
    in_r = np.where(is_conv, oh * r_start + (oh * ow - oh) * r_other, r_start)
    cls_val = np.stack([w_first + r_start, w_row0 + r_other, w_rowstart + r_start, w_other + r_other], axis=1) * cyc[:, None]
    # pooling / sum constants
    words_c = _words(cin * a, width)
    t_pool = P.POOL_CYCLE_NS * np.ceil(cin / 64) * np.ceil(kk / 9)
    pool_t = t_pool + 10 * words_c * cyc + d_tr * cout * o / H("bw_inter") + words_c * cyc
    sum_t = P.SUM_CYCLE_NS + 2 * col("nin") * words_c * cyc + d_tr * cin * o / H("bw_inter")
    const_t = np.where(is_conv, fixed_w, np.where(is_fc, fixed_w + (in_w + in_r) * cyc,
                                                  np.where(is_pool, pool_t, sum_t)))
    cls_val = np.where(is_conv[:, None], cls_val, 0.0)
    cls_flat = cls_val.ravel()

    # ---- pipeline, one wave per layer position -----------------------------------------
    npx_i = npx.astype(np.int64)
    fin_off = np.concatenate([[0], np.cumsum(npx_i)[:-1]])
    n_fin = int(npx_i.sum())
    # a zero region after the finish times: "arrival" of pixels that read the network input
    FIN = np.zeros(n_fin + int(np.max(col("ih") * col("iw"))) + 1)
    pos = col("pos")
    in0, in1 = col("in0"), col("in1")
    g_in0 = np.where(in0 >= 0, in0 + lay_off[net_of], -1)
    g_in1 = np.where(in1 >= 0, in1 + lay_off[net_of], -1)
    _ih, _iw = col("ih"), col("iw")
    tab_shape = tab[:, [_COL["type"], _COL["oh"], _COL["ow"], _COL["ih"], _COL["iw"], _COL["k"], _COL["s"],
                        _COL["p"]]]
    for wave in range(int(nlay.max()) if nn_ else 0):
        ls = np.flatnonzero(pos == wave)
        cnt = npx_i[ls]
        seg = np.repeat(np.arange(len(ls)), cnt)
        seg_start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        tpl = [_template(tuple(row)) for row in tab_shape[ls].tolist()]
        q = np.concatenate([tp[0] for tp in tpl])
        cls = np.concatenate([tp[1] for tp in tpl])
        loc = np.concatenate([tp[2] for tp in tpl])
        t = const_t[ls][seg] + cls_flat[(ls * 4)[seg] + cls]
        src0 = g_in0[ls]
        base0 = np.where(src0 >= 0, fin_off[np.maximum(src0, 0)], n_fin)
        arr = FIN[base0[seg] + q]
        src1 = g_in1[ls]
        if np.any(src1 >= 0):
            base1 = np.where(src1 >= 0, fin_off[np.maximum(src1, 0)], n_fin)
            arr = np.maximum(arr, FIN[base1[seg] + loc])
        multi = col("nin")[ls] > 2  # element_sum of 3+ inputs: the further inputs
        if np.any(multi):
            for li in np.flatnonzero(multi).tolist():
                a_, n_ = int(seg_start[li]), int(cnt[li])
                for pj in prod[cons == ls[li]].tolist():
                    st_ = int(fin_off[pj])
                    arr[a_:a_ + n_] = np.maximum(arr[a_:a_ + n_], FIN[st_:st_ + n_])
        fc_l = is_fc[ls] & (src0 >= 0)
        if np.any(fc_l):
            for li, sl_ in zip(np.flatnonzero(fc_l).tolist(), src0[fc_l].tolist(), strict=True):
                st_ = int(fin_off[sl_])
                arr[int(seg_start[li])] = FIN[st_:st_ + int(npx_i[sl_])].max()
        csum = np.cumsum(t)
        base = np.concatenate([[0.0], csum])[seg_start]
        C = csum - base[seg]
        x = arr - C + t
        span = float(np.abs(x).max()) * 4 + 1.0
        off = seg * span
        acc = np.maximum.accumulate(x + off)
        acc -= off
        FIN[fin_off[ls][seg] + loc] = C + acc
    latency = np.maximum.reduceat(FIN[:n_fin], fin_off[lay_off]) if nn_ else np.zeros(0)

    # ---- energy / power ----------------------------------------------------------------
    G = H("groups")
    n_pe = tiles * mpe
    adc_act = np.where(corrected, np.minimum(H("adc_num"), mc), np.ceil(mc / H("omux")))
    dac_act = np.where(corrected, np.minimum(H("dac_num"), mr), np.ceil(mr / H("idemux")))
    p_adc = n_pe * G * adc_act * H("p_adc")
    p_dac = n_pe * G * dac_act * H("p_dac")
    p_xb = n_pe * G * H("polarity") * mr * mc * H("cell_power") / (H("idemux") * H("omux"))
    p_shift = n_pe * G * adc_act * P.SHIFTREG_POWER_W
    p_oreg = n_pe * G * adc_act * P.REG_POWER_W
    p_ireg = n_pe * G * dac_act * P.REG_POWER_W
    p_mux = n_pe * G * adc_act * H("mux_p_out")
    p_demux = n_pe * G * dac_act * H("mux_p_in")
    p_joint = tiles * np.maximum(mpe - 1, 0) * adc_act * P.JOINT_POWER_W
    pr, pw_ = H("buf_p_read"), H("buf_p_write")
    p_bufr = tiles * (mpe + 1) * pr
    p_bufw = tiles * (mpe + 1) * pw_
    nb_w = in_w + npx * w_out
    nb_r = in_r + npx * r_merge
    e_w = (p_adc * npx * n_pass * H("t_adc") + p_dac * npx * n_pass * H("t_dac")
           + p_xb * npx * n_pass * H("read_ns")
           + npx * (p_shift * t_shift + p_oreg * t_oreg + p_ireg * t_ireg + p_mux * t_mux + p_demux * t_demux
                    + p_joint * t_joint)
           + p_bufr * nb_r * cyc + p_bufw * nb_w * cyc)
    pw_w = p_adc + p_dac + p_xb + p_shift + p_oreg + p_ireg + p_mux + p_demux + p_joint + p_bufr + p_bufw
    t_bufp = 10 * words_c * cyc
    e_p = P.POOL_POWER_W * npx * t_pool + (pr + pw_) / 2 * npx * t_bufp
    pw_p = P.POOL_POWER_W + pr + pw_
    e_l = np.where(is_w, e_w, np.where(is_pool, e_p, 0.0))
    p_l = np.where(is_w, pw_w, np.where(is_pool, pw_p, 0.0))
    energy = np.add.reduceat(e_l, lay_off) if nn_ else np.zeros(0)
    power = np.add.reduceat(p_l, lay_off) if nn_ else np.zeros(0)
    power = np.where(hpv["corrected"] > 0, energy / latency, power)
    area = net_tiles * hpv["tile_area"]
    return latency, energy, area, power, net_tiles
