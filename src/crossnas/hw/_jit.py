"""Compiled (numba) totals kernel: the whole cost model of a batch in one call.

This module imports numba at import time; :mod:`crossnas.hw.fast` imports it lazily and
falls back to its pure-numpy implementation when numba is missing or fails.

The kernel walks every network of the batch, and inside it every layer, tile and
output pixel, with the same formulas as :func:`crossnas.hw.cost.cost_one` (mapping,
spiral placement and aggregation-tile distances, per-pixel times, the pixel pipeline
``finish(p) = max(arrival(p), finish(p-1)) + t(p)``, energy, power, area). Inputs are
flat arrays (see :func:`crossnas.hw.fast.plan_of` and :func:`crossnas.hw.fast.hw_vector`
for the column layouts). Model constants come in as an array, not as globals, so a
cached compilation never holds stale numbers.
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

try:
    from numba import njit
except ImportError:  # pragma: no cover - the caller checks for numba first
    raise

# layer table columns (must match crossnas.hw.fast.plan_of)
_TYP, _CIN, _COUT, _K, _S, _P, _IH, _IW, _OH, _OW, _W, _A, _INS, _INN = range(14)


def _kernel(tab, ins, lay_off, in_off, hw, consts, out):  # noqa: ANN001, C901 - compiled hot loop
    """Totals of every network of the batch (MNSIM units).

    Args:
        tab: ``(L, 14)`` int64 layer table of all networks, local input offsets.
        ins: ``(I,)`` int64 input-layer indices (local to the network, ``-1`` = input).
        lay_off: ``(N + 1,)`` first row of each network in ``tab``.
        in_off: ``(N + 1,)`` first entry of each network in ``ins``.
        hw: ``(N, F)`` float64 hardware vectors (:data:`crossnas.hw.fast.HW_FIELDS`).
        consts: model constants (:data:`crossnas.hw.fast.KERNEL_CONSTS`).
        out: ``(N, 6)`` float64, filled with latency_ns, energy_nJ, area_um2, power_W,
            tiles, and the index of a layer that cannot be mapped (``-1`` when all can).
    """
    demux_ns, mux_ns, pool_cycle, sum_cycle = consts[0], consts[1], consts[2], consts[3]
    pool_power, shiftreg_p, reg_p, joint_p = consts[4], consts[5], consts[6], consts[7]
    n_net = lay_off.shape[0] - 1
    big = 1 << 30  # larger than any coordinate or distance
    huge = 1 << 62  # larger than any row-major rank x * big + y
    for n in range(n_net):
        h = hw[n]
        xr, xc, adc_num, dac_num = h[0], h[1], h[2], h[3]
        omux, idemux, m_out, m_in = h[4], h[5], h[6], h[7]
        adc_bits, t_adc, p_adc = h[8], h[9], h[10]
        dac_bits, t_dac, p_dac = h[11], h[12], h[13]
        read_ns, cell_power, cell_bits, polarity = h[14], h[15], h[16], h[17]
        groups, npe, period, bw_inter, bw_intra = h[18], h[19], h[20], h[21], h[22]
        cyc, width, buf_pr, buf_pw, tile_area = h[23], h[24], h[25], h[26], h[27]
        grow = int(h[28]) // 2
        corrected = h[29] > 0
        mux_p_out, mux_p_in = h[30], h[31]
        l0 = lay_off[n]
        nl = lay_off[n + 1] - l0
        i0 = in_off[n]
        out[n, 5] = -1.0

        # ---- mapping ---------------------------------------------------------------
        tiles = np.zeros(nl, dtype=np.int64)
        mpe = np.zeros(nl)
        mr = np.zeros(nl)
        mc = np.zeros(nl)
        bad = -1
        for li in range(nl):
            r = l0 + li
            typ = tab[r, _TYP]
            if typ <= 1:
                w = tab[r, _W]
                sl = w - 1 if polarity == 2 else w
                if sl < 1:
                    sl = 1
                slf = float(sl)
                if corrected:
                    slf = math.ceil(slf / cell_bits)
                mx = math.ceil(slf / groups) * math.ceil(tab[r, _COUT] / xc)
                cin = float(tab[r, _CIN])
                if typ == 0:
                    kk = float(tab[r, _K] * tab[r, _K])
                    cx = math.floor(xr / kk)
                    if cx < 1:
                        bad = li
                        break
                    my = math.ceil(cin / cx)
                    mr[li] = min(cx, cin) * kk
                else:
                    my = math.ceil(cin / xr)
                    mr[li] = min(cin, xr)
                mc[li] = min(float(tab[r, _COUT]), xc)
                pes = mx * my
                tiles[li] = int(math.ceil(pes / npe))
                mpe[li] = min(pes, npe)
            elif typ == 2:
                tiles[li] = 1
                mpe[li] = 1.0
        if bad >= 0:
            out[n, 5] = float(bad)
            continue

        # ---- placement (spiral from (0, 0)) -----------------------------------------
        tstart = np.zeros(nl + 1, dtype=np.int64)
        for li in range(nl):
            tstart[li + 1] = tstart[li] + tiles[li]
        n_t = tstart[nl]
        tx = np.empty(n_t, dtype=np.int64)
        ty = np.empty(n_t, dtype=np.int64)
        for t in range(n_t):
            s = int(math.sqrt(t))
            while s * s > t:
                s -= 1
            while (s + 1) * (s + 1) <= t:
                s += 1
            off = t - s * s
            if s % 2 == 1:
                if off <= s:
                    tx[t] = off
                    ty[t] = s
                else:
                    tx[t] = s
                    ty[t] = 2 * s - off
            else:
                if off <= s:
                    tx[t] = s
                    ty[t] = off
                else:
                    tx[t] = 2 * s - off
                    ty[t] = s
        umin = np.full(nl, big, dtype=np.int64)
        umax = np.full(nl, -big, dtype=np.int64)
        vmin = np.full(nl, big, dtype=np.int64)
        vmax = np.full(nl, -big, dtype=np.int64)
        first = np.full(nl, -1, dtype=np.int64)
        for li in range(nl):
            best_rm = huge
            for t in range(tstart[li], tstart[li + 1]):
                u = tx[t] + ty[t]
                v = tx[t] - ty[t]
                umin[li] = min(umin[li], u)
                umax[li] = max(umax[li], u)
                vmin[li] = min(vmin[li], v)
                vmax[li] = max(vmax[li], v)
                rm = tx[t] * big + ty[t]
                if rm < best_rm:
                    best_rm = rm
                    first[li] = t
        # consumers: extremes of their tiles, counts, element-sum consumers
        cumin = np.full(nl, big, dtype=np.int64)
        cumax = np.full(nl, -big, dtype=np.int64)
        cvmin = np.full(nl, big, dtype=np.int64)
        cvmax = np.full(nl, -big, dtype=np.int64)
        n_cons = np.zeros(nl, dtype=np.int64)
        n_cons_sum = np.zeros(nl, dtype=np.int64)
        sum_dist = np.zeros(nl)
        for li in range(nl):
            r = l0 + li
            for e in range(tab[r, _INS], tab[r, _INS] + tab[r, _INN]):
                j = ins[i0 + e]
                if j < 0:
                    continue
                n_cons[j] += 1
                if tab[r, _TYP] == 3:
                    n_cons_sum[j] += 1
                if tiles[li] > 0:
                    cumin[j] = min(cumin[j], umin[li])
                    cumax[j] = max(cumax[j], umax[li])
                    cvmin[j] = min(cvmin[j], vmin[li])
                    cvmax[j] = max(cvmax[j], vmax[li])
                    if tab[l0 + j, _TYP] == 3:
                        t = first[li]
                        sum_dist[j] = max(sum_dist[j], float(abs(tx[t] - grow) + ty[t]))
        d_in = np.zeros(nl)
        d_tr = np.zeros(nl)
        for li in range(nl):
            last = li == nl - 1
            if tab[l0 + li, _TYP] == 3:
                if not last:
                    d_tr[li] = sum_dist[li]
                continue
            if tiles[li] == 0:
                continue
            branch = n_cons[li] > 0 and n_cons_sum[li] == n_cons[li]
            has_dst = cumin[li] < big
            b_score = big
            b_rm = huge
            b_sp = 0
            b_out = 0
            for t in range(tstart[li], tstart[li + 1]):
                u = tx[t] + ty[t]
                v = tx[t] - ty[t]
                sp = max(max(u - umin[li], umax[li] - u), max(v - vmin[li], vmax[li] - v))
                if last:
                    o = 0
                elif branch:
                    o = abs(tx[t] - grow) + ty[t]
                elif has_dst:
                    o = max(max(u - cumin[li], cumax[li] - u), max(v - cvmin[li], cvmax[li] - v))
                else:
                    o = 0
                sc = sp + o
                rm = tx[t] * big + ty[t]
                if sc < b_score or (sc == b_score and rm < b_rm):
                    b_score = sc
                    b_rm = rm
                    b_sp = sp
                    b_out = o
            d_in[li] = float(b_sp)
            d_tr[li] = float(b_out)

        # ---- per-layer times, the pixel pipeline, energy and power -----------------------
        fo = np.zeros(nl + 1, dtype=np.int64)
        for li in range(nl):
            npx = 1 if tab[l0 + li, _TYP] == 1 else tab[l0 + li, _OH] * tab[l0 + li, _OW]
            fo[li + 1] = fo[li] + npx
        fin = np.empty(fo[nl])
        latency = 0.0
        energy = 0.0
        power = 0.0
        n_tiles = 0
        tl = math.ceil(math.log2(npe)) if npe > 1 else 0.0
        addlog = math.ceil(math.log2(groups)) if groups > 1 else 0.0
        for li in range(nl):
            r = l0 + li
            typ = tab[r, _TYP]
            cin = float(tab[r, _CIN])
            cout = float(tab[r, _COUT])
            k = tab[r, _K]
            s = tab[r, _S]
            p = tab[r, _P]
            ih = tab[r, _IH]
            iw = tab[r, _IW]
            oh = tab[r, _OH]
            ow = tab[r, _OW]
            a = float(tab[r, _A])
            kf, sf, pf = float(k), float(s), float(p)
            kk = kf * kf
            n_tiles += tiles[li]
            ofs = fo[li]
            e_l = 0.0
            p_l = 0.0
            if typ <= 1:
                lmr, lmc, lmpe = mr[li], mc[li], mpe[li]
                ftiles = float(tiles[li])
                rg = math.ceil(lmr / dac_num)
                cg = math.ceil(lmc / adc_num)
                n_pass = math.ceil(a / dac_bits) * rg * cg
                g = math.ceil(math.log2(lmpe)) if lmpe > 1 else 0.0
                t_ireg = rg * cg * period + n_pass * period
                t_shift = n_pass * period
                t_demux = n_pass * demux_ns * m_in
                t_mux = n_pass * mux_ns * m_out
                t_oreg = cg * period
                t_joint = g * period
                t_digital = t_ireg + t_shift + t_demux + t_mux + cg * addlog * period + t_oreg + t_joint
                t_intra = max(tl * (adc_bits + g) - g * (g + 1) / 2, 0.0) * lmc / bw_intra
                w_out = math.ceil((adc_bits + g) * lmc * lmpe / width - 1e-9)
                r_merge = math.ceil(lmc * a * lmpe / width - 1e-9)
                merge = d_in[li] * (period + lmc * lmpe * a / bw_inter)
                transfer = d_tr[li] * cout * a / bw_inter
                comp = n_pass * (t_dac + read_ns + t_adc)
                fixed = comp + t_digital + t_intra + (w_out + r_merge) * cyc + merge + transfer
                r_start = math.ceil(lmr * a / width - 1e-9)
                if typ == 0:
                    c_pe = lmr / kk
                    kp = max(kf - pf, 0.0)
                    w_first = math.ceil(c_pe * kp * kp * a / width - 1e-9)
                    w_rowstart = math.ceil(c_pe * sf * kp * a / width - 1e-9)
                    w_row0 = math.ceil(c_pe * sf * kf * a / width - 1e-9)
                    w_other = math.ceil(c_pe * sf * sf * a / width - 1e-9)
                    r_other = math.ceil(sf * kf * c_pe * a / width - 1e-9)
                    fo_h, fw_h = float(oh), float(ow)
                    in_w = w_first + (fw_h - 1) * w_row0 + (fo_h - 1) * w_rowstart + (fo_h - 1) * (fw_h - 1) * w_other
                    in_r = fo_h * r_start + (fo_h * fw_h - fo_h) * r_other
                    t_first = fixed + (w_first + r_start) * cyc
                    t_row0 = fixed + (w_row0 + r_other) * cyc
                    t_rowstart = fixed + (w_rowstart + r_start) * cyc
                    t_other = fixed + (w_other + r_other) * cyc
                    src = ins[i0 + tab[r, _INS]]
                    sofs = fo[src] if src >= 0 else 0
                    prev = 0.0
                    for i in range(oh):
                        rq = i * s + k - 1 - p
                        rq = min(max(rq, 0), ih - 1)
                        for j in range(ow):
                            if i == 0:
                                t = t_first if j == 0 else t_row0
                            else:
                                t = t_rowstart if j == 0 else t_other
                            if src >= 0:
                                cq = j * s + k - 1 - p
                                cq = min(max(cq, 0), iw - 1)
                                arr = fin[sofs + rq * iw + cq]
                                if arr > prev:
                                    prev = arr
                            prev += t
                            fin[ofs + i * ow + j] = prev
                    npx = float(oh * ow)
                else:
                    in_w = math.ceil(cin * a / width - 1e-9)
                    in_r = r_start
                    src = ins[i0 + tab[r, _INS]]
                    arr = 0.0
                    if src >= 0:
                        for q in range(fo[src], fo[src + 1]):
                            if fin[q] > arr:
                                arr = fin[q]
                    prev = arr + fixed + (in_w + in_r) * cyc
                    fin[ofs] = prev
                    npx = 1.0
                # energy / power of the layer
                n_pe = ftiles * lmpe
                if corrected:
                    adc_act = min(adc_num, lmc)
                    dac_act = min(dac_num, lmr)
                else:
                    adc_act = math.ceil(lmc / omux)
                    dac_act = math.ceil(lmr / idemux)
                pa = n_pe * groups * adc_act * p_adc
                pd = n_pe * groups * dac_act * p_dac
                px = n_pe * groups * polarity * lmr * lmc * cell_power / (idemux * omux)
                ps = n_pe * groups * adc_act * shiftreg_p
                po = n_pe * groups * adc_act * reg_p
                pi = n_pe * groups * dac_act * reg_p
                pm = n_pe * groups * adc_act * mux_p_out
                pdm = n_pe * groups * dac_act * mux_p_in
                pj = ftiles * max(lmpe - 1, 0.0) * adc_act * joint_p
                pbr = ftiles * (lmpe + 1) * buf_pr
                pbw = ftiles * (lmpe + 1) * buf_pw
                nb_w = in_w + npx * w_out
                nb_r = in_r + npx * r_merge
                e_l = (pa * npx * n_pass * t_adc + pd * npx * n_pass * t_dac + px * npx * n_pass * read_ns
                       + npx * (ps * t_shift + po * t_oreg + pi * t_ireg + pm * t_mux + pdm * t_demux + pj * t_joint)
                       + pbr * nb_r * cyc + pbw * nb_w * cyc)
                p_l = pa + pd + px + ps + po + pi + pm + pdm + pj + pbr + pbw
            elif typ == 2:
                words_c = math.ceil(cin * a / width - 1e-9)
                t_pool = pool_cycle * math.ceil(cin / 64) * math.ceil(kk / 9)
                t_buf = 10 * words_c * cyc
                t = t_pool + t_buf + d_tr[li] * cout * a / bw_inter + words_c * cyc
                src = ins[i0 + tab[r, _INS]]
                sofs = fo[src] if src >= 0 else 0
                prev = 0.0
                for i in range(oh):
                    rq = i * s + k - 1 - p
                    rq = min(max(rq, 0), ih - 1)
                    for j in range(ow):
                        if src >= 0:
                            cq = j * s + k - 1 - p
                            cq = min(max(cq, 0), iw - 1)
                            arr = fin[sofs + rq * iw + cq]
                            if arr > prev:
                                prev = arr
                        prev += t
                        fin[ofs + i * ow + j] = prev
                npx = float(oh * ow)
                e_l = pool_power * npx * t_pool + (buf_pr + buf_pw) / 2 * npx * t_buf
                p_l = pool_power + buf_pr + buf_pw
            else:
                nin = tab[r, _INN]
                words_c = math.ceil(cin * a / width - 1e-9)
                t = sum_cycle + 2 * nin * words_c * cyc + d_tr[li] * cin * a / bw_inter
                npx_i = oh * ow
                prev = 0.0
                for q in range(npx_i):
                    arr = 0.0
                    for e in range(tab[r, _INS], tab[r, _INS] + nin):
                        j = ins[i0 + e]
                        if j >= 0:
                            v = fin[fo[j] + q]
                            if v > arr:
                                arr = v
                    if arr > prev:
                        prev = arr
                    prev += t
                    fin[ofs + q] = prev
            if fo[li + 1] > ofs and fin[fo[li + 1] - 1] > latency:
                latency = fin[fo[li + 1] - 1]
            energy += e_l
            power += p_l
        out[n, 0] = latency
        out[n, 1] = energy
        out[n, 2] = n_tiles * tile_area
        out[n, 3] = energy / latency if corrected else power
        out[n, 4] = float(n_tiles)


def _compile():  # noqa: ANN202
    """``njit(cache=True)`` of the kernel; without an on-disk cache when none is writable."""
    try:
        return njit(cache=True, error_model="numpy")(_kernel)
    except Exception as exc:  # noqa: BLE001 - numba raises RuntimeError when no cache locator works
        log.debug("numba on-disk cache unavailable (%s); compiling in memory", exc)
        return njit(cache=False, error_model="numpy")(_kernel)


kernel = _compile()
