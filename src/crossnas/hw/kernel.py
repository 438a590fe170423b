"""The cost model: one kernel for every caller.

:func:`cost_kernel` computes, for a batch of networks each on its own hardware, the totals,
the per-component breakdowns and the per-layer figures in one pass: mapping, tile
placement and aggregation-tile distances, the per-pixel pipeline, energy, power, area,
and (``corrected`` mode) the memory hierarchy. The per-network report, the CLI
(``crossnas hw``, ``--batch`` included) and the search all call it through
:func:`crossnas.hw.cost.cost_networks`.

The source is plain Python over numpy arrays and ``math``; :func:`load` compiles it with
numba (``njit(cache=True)``) and falls back to running the same function uncompiled when
numba is missing or fails (slower, identical numbers). Inputs are flat arrays:

* ``tab`` int64 ``(L, 14)``: one row per compute layer of all networks, columns
  :data:`LAYER_COLS`; ``ins`` int64: input-layer indices (local, ``-1`` = network input);
* ``lay_off``/``in_off`` ``(N + 1,)``: each network's first row in ``tab``/``ins``;
* ``hw`` float64 ``(N, len(HW_FIELDS))``: hardware vectors (:func:`crossnas.hw.params.hw_vector`);
* ``consts``: model constants (:data:`crossnas.hw.params.KERNEL_CONSTS`), passed in so a
  cached compilation never holds stale numbers.

Outputs (filled): ``tot`` ``(N, len(TOT_COLS))`` and ``lay`` ``(L, len(LAY_COLS))``.
Units inside are MNSIM's: ns, nJ, um^2, W, bits.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

COMPONENTS = ("crossbar", "ADC", "DAC", "digital", "buffer", "pooling", "dram")
"""Energy / area / power components, in column order."""
NC = len(COMPONENTS)

LAYER_COLS = ("type", "cin", "cout", "k", "s", "p", "ih", "iw", "oh", "ow", "w", "a", "ins", "nin", "out_wrap",
              "in_wrap")
_TYP, _CIN, _COUT, _K, _S, _P, _IH, _IW, _OH, _OW, _W, _A, _INS, _INN, _MO, _MI = range(16)
LAYER_TYPES = {"conv": 0, "fc": 1, "pooling": 2, "element_sum": 3}

HW_FIELDS = (
    "xr", "xc", "adc_num", "dac_num", "omux", "idemux", "m_out", "m_in", "adc_bits", "t_adc", "p_adc",
    "dac_bits", "t_dac", "p_dac", "read_ns", "cell_power", "cell_bits", "polarity", "groups", "npe",
    "period", "bw_inter", "bw_intra", "cyc", "width", "buf_p_read", "buf_p_write", "tile_area", "mesh_rows",
    "mesh_cols", "connection", "corrected", "mux_p_out", "mux_p_in", "pool_cycle", "pool_units",
    "pool_power", "pool_area", "subarray", "levels", "e_cell", "e_conv", "adc_rate", "e_dac", "period_e",
    "leak_cell", "e_buf_r", "e_buf_w", "buf_leak", "buf_area", "inbuf", "outbuf", "gbuf", "bw_gbuf",
    "bw_dram", "e_dram", "adc_area", "tile_fixed_area", "epi_reactivate",
)
"""Columns of a hardware vector. Fields after ``pool_area`` are read in ``corrected`` mode only."""
(_XR, _XC, _ADC_NUM, _DAC_NUM, _OMUX, _IDEMUX, _M_OUT, _M_IN, _ADC_BITS, _T_ADC, _P_ADC,
 _DAC_BITS, _T_DAC, _P_DAC, _READ_NS, _CELL_POWER, _CELL_BITS, _POL, _GROUPS, _NPE,
 _PERIOD, _BW_INTER, _BW_INTRA, _CYC, _WIDTH, _BUF_PR, _BUF_PW, _TILE_AREA, _MESH_ROWS,
 _MESH_COLS, _CONN, _CORR, _MUX_P_OUT, _MUX_P_IN, _POOL_CYCLE, _POOL_UNITS,
 _POOL_POWER, _POOL_AREA, _SUBARRAY, _LEVELS, _E_CELL, _E_CONV, _ADC_RATE, _E_DAC, _PERIOD_E,
 _LEAK_CELL, _E_BUF_R, _E_BUF_W, _BUF_LEAK, _BUF_AREA, _INBUF, _OUTBUF, _GBUF, _BW_GBUF,
 _BW_DRAM, _E_DRAM, _ADC_AREA, _TILE_FIXED_AREA, _EPI_REACT) = range(59)

TOT_COLS = ("latency_ns", "energy_nJ", "area_um2", "power_W", "tiles", "error", "error_layer",
            "inbuf_bits", "outbuf_bits", "gbuf_bits", "dram_bits", "static_nJ")
"""Per-network outputs, followed by energy (nJ) and power (W) per component (area parts are
the per-tile parts times the tiles, plus the sized buffers in ``corrected`` mode)."""
T_LAT, T_EN, T_AREA, T_POW, T_TILES, T_ERR, T_ERR_LAYER, T_INBUF, T_OUTBUF, T_GBUF, T_DRAM, T_STATIC = range(12)
T_E0 = len(TOT_COLS)
T_P0 = T_E0 + NC
N_TOT = T_P0 + NC
ERR_UNMAPPABLE = 1.0
"""``error``: a conv kernel does not fit the crossbar rows (``error_layer`` names it)."""
ERR_CHIP = 2.0
"""``error``: the network needs more tiles than the chip has."""

LAY_COLS = ("finish_ns", "pes", "tiles", "crossbars", "area_um2", "d_in", "d_trans", "adc_bits",
            "adc_bits_needed", "compute_ns", "movement_ns", "dram_bits")
"""Per-layer outputs, followed by energy (nJ) and power (W) per component."""
L_FIN, L_PES, L_TILES, L_XBARS, L_AREA, L_DIN, L_DTR, L_ADCB, L_ADCN, L_COMP, L_MOVE, L_DRAM = range(12)
L_E0 = len(LAY_COLS)
L_P0 = L_E0 + NC
N_LAY = L_P0 + NC
_C_XBAR, _C_ADC, _C_DAC, _C_DIG, _C_BUF, _C_POOL, _C_DRAM = range(NC)
N_CONSTS = 7


def cost_kernel(tab, ins, lay_off, in_off, hw, consts, tot, lay):  # noqa: ANN001, ANN201, C901, PLR0912, PLR0915
    """Fills ``tot`` and ``lay`` for every network of the batch (see the module docstring)."""
    demux_ns, mux_ns, sum_cycle = consts[0], consts[1], consts[2]
    shiftreg_p, reg_p, joint_p, activity = consts[3], consts[4], consts[5], consts[6]
    big = 1 << 30
    huge = 1 << 62
    n_net = lay_off.shape[0] - 1
    for n in range(n_net):
        h = hw[n]
        xr, xc, adc_num, dac_num = h[_XR], h[_XC], h[_ADC_NUM], h[_DAC_NUM]
        omux, idemux, m_out, m_in = h[_OMUX], h[_IDEMUX], h[_M_OUT], h[_M_IN]
        adc_bits, t_adc, p_adc = h[_ADC_BITS], h[_T_ADC], h[_P_ADC]
        dac_bits, t_dac, p_dac = h[_DAC_BITS], h[_T_DAC], h[_P_DAC]
        read_ns, cell_power, cell_bits, polarity = h[_READ_NS], h[_CELL_POWER], h[_CELL_BITS], h[_POL]
        groups, npe, period, bw_inter, bw_intra = h[_GROUPS], h[_NPE], h[_PERIOD], h[_BW_INTER], h[_BW_INTRA]
        cyc, width, buf_pr, buf_pw = h[_CYC], h[_WIDTH], h[_BUF_PR], h[_BUF_PW]
        mesh_rows = int(h[_MESH_ROWS])
        mesh_cols = int(h[_MESH_COLS])
        conn = int(h[_CONN])
        grow = h[_MESH_ROWS] / 2.0
        corrected = h[_CORR] > 0
        mux_p_out, mux_p_in = h[_MUX_P_OUT], h[_MUX_P_IN]
        pool_cycle, pool_units, pool_power = h[_POOL_CYCLE], h[_POOL_UNITS], h[_POOL_POWER]
        l0 = lay_off[n]
        nl = lay_off[n + 1] - l0
        i0 = in_off[n]
        for c in range(N_TOT):
            tot[n, c] = 0.0
        for li in range(nl):
            for c in range(N_LAY):
                lay[l0 + li, c] = 0.0

        # ---- mapping ---------------------------------------------------------------
        tiles = np.zeros(nl, dtype=np.int64)
        mpe = np.zeros(nl)
        mr = np.zeros(nl)
        mc = np.zeros(nl)
        slc = np.zeros(nl)
        my_ = np.zeros(nl)
        coe = np.zeros(nl)
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
                    slf = float(math.ceil(slf / cell_bits))
                slc[li] = slf
                # an epitome conv stores only E: ceil(cout / out_wrap) x ceil(cin / in_wrap) channels
                coe[li] = math.ceil(tab[r, _COUT] / tab[r, _MO])
                mx = math.ceil(slf / groups) * math.ceil(coe[li] / xc)
                cin = float(math.ceil(tab[r, _CIN] / tab[r, _MI]))
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
                my_[li] = my
                mc[li] = min(coe[li], xc)
                pes = mx * my
                tiles[li] = int(math.ceil(pes / npe))
                mpe[li] = min(pes, npe)
                lay[r, L_PES] = pes
                lay[r, L_XBARS] = pes * groups * polarity
            elif typ == 2:
                tiles[li] = 1
                mpe[li] = 1.0
                lay[r, L_PES] = 1.0
            lay[r, L_TILES] = tiles[li]
        if bad >= 0:
            tot[n, T_ERR] = ERR_UNMAPPABLE
            tot[n, T_ERR_LAYER] = float(bad)
            continue
        tstart = np.zeros(nl + 1, dtype=np.int64)
        for li in range(nl):
            tstart[li + 1] = tstart[li] + tiles[li]
        n_t = tstart[nl]
        tot[n, T_TILES] = float(n_t)
        if n_t > mesh_rows * mesh_cols:
            tot[n, T_ERR] = ERR_CHIP
            continue

        # ---- placement ---------------------------------------------------------------
        tx = np.empty(n_t, dtype=np.int64)
        ty = np.empty(n_t, dtype=np.int64)
        if conn == 2:  # square spiral from (0, 0); positions outside a non-square mesh are skipped
            q = 0
            t = 0
            while q < n_t:
                s = int(math.sqrt(t))
                while s * s > t:
                    s -= 1
                while (s + 1) * (s + 1) <= t:
                    s += 1
                off = t - s * s
                if s % 2 == 1:
                    if off <= s:
                        px, py = off, s
                    else:
                        px, py = s, 2 * s - off
                elif off <= s:
                    px, py = s, off
                else:
                    px, py = 2 * s - off, s
                t += 1
                if px < mesh_rows and py < mesh_cols:
                    tx[q] = px
                    ty[q] = py
                    q += 1
        else:  # 0 row-major, 1 and 3 snake
            for t in range(n_t):
                px = t // mesh_cols
                py = t % mesh_cols
                if conn != 0 and px % 2 == 1:
                    py = mesh_cols - 1 - py
                tx[t] = px
                ty[t] = py
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
                        sum_dist[j] = max(sum_dist[j], abs(tx[t] - grow) + ty[t])
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
            b_score = 1e300
            b_rm = huge
            b_sp = 0.0
            b_out = 0.0
            for t in range(tstart[li], tstart[li + 1]):
                u = tx[t] + ty[t]
                v = tx[t] - ty[t]
                sp = float(max(max(u - umin[li], umax[li] - u), max(v - vmin[li], vmax[li] - v)))
                if last:
                    o = 0.0
                elif branch:
                    o = abs(tx[t] - grow) + ty[t]
                elif has_dst:
                    o = float(max(max(u - cumin[li], cumax[li] - u), max(v - cvmin[li], cvmax[li] - v)))
                else:
                    o = 0.0
                sc = sp + o
                rm = tx[t] * big + ty[t]
                if sc < b_score or (sc == b_score and rm < b_rm):
                    b_score = sc
                    b_rm = rm
                    b_sp = sp
                    b_out = o
            d_in[li] = b_sp
            d_tr[li] = b_out

        # ---- corrected mode: buffer needs and sizes --------------------------------------
        need_in = 0.0
        need_out = 0.0
        need_g = 0.0
        if corrected:
            for li in range(nl):
                r = l0 + li
                typ = tab[r, _TYP]
                a = float(tab[r, _A])
                if typ == 0:
                    kf = float(tab[r, _K])
                    need_in = max(need_in, mr[li] / (kf * kf) * tab[r, _MI] * kf * tab[r, _IW] * a)
                    need_out = max(need_out, mc[li] * mpe[li] * tab[r, _OW] * a)
                elif typ == 1:
                    need_in = max(need_in, mr[li] * a)
                    need_out = max(need_out, mc[li] * mpe[li] * a)
                elif typ == 3:
                    need_g = max(need_g, float(tab[r, _CIN] * tab[r, _OH] * tab[r, _OW]) * a)
            need_g = max(need_g, width)
        cap_in = h[_INBUF] if h[_INBUF] > 0 else need_in
        cap_out = h[_OUTBUF] if h[_OUTBUF] > 0 else need_out
        cap_g = h[_GBUF] if h[_GBUF] > 0 else need_g
        tot[n, T_INBUF] = cap_in
        tot[n, T_OUTBUF] = cap_out
        tot[n, T_GBUF] = cap_g

        # ---- per-layer times, the pixel pipeline, energy and power ------------------------
        fo = np.zeros(nl + 1, dtype=np.int64)
        for li in range(nl):
            npx = 1 if tab[l0 + li, _TYP] == 1 else tab[l0 + li, _OH] * tab[l0 + li, _OW]
            fo[li + 1] = fo[li] + npx
        fin = np.empty(fo[nl])
        latency = 0.0
        tl = math.ceil(math.log2(npe)) if npe > 1 else 0.0
        addlog = math.ceil(math.log2(groups)) if groups > 1 else 0.0
        per = h[_PERIOD_E] if corrected else period  # digital energy: per operation in corrected mode
        dram_total = 0.0
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
            ofs = fo[li]
            src = ins[i0 + tab[r, _INS]]
            sofs = fo[src] if src >= 0 else 0
            ec = np.zeros(NC)
            pc = np.zeros(NC)
            t_move = 0.0
            dram_l = 0.0
            if typ <= 1:
                lmr, lmc, lmpe = mr[li], mc[li], mpe[li]
                ftiles = float(tiles[li])
                mo = float(tab[r, _MO])
                mi = float(tab[r, _MI])
                react = mi if h[_EPI_REACT] > 0 else 1.0  # reads per input chunk (epitome)
                extra = 0.0 if react > 1 or mi <= 1 else math.ceil(math.log2(mi) - 1e-9)  # summed chunks
                cycles = math.ceil((a + extra) / dac_bits)
                rpr = dac_num
                if corrected:
                    rpr = min(dac_num, h[_SUBARRAY])  # rows read at once
                    rg = math.ceil(lmr / rpr)
                    full = rpr * (h[_LEVELS] - 1.0) * (2.0**dac_bits - 1.0)
                    b_need = max(math.ceil(math.log2(full + 1.0) - 1e-9), 1.0)
                    b_eff = min(adc_bits, b_need)
                    t_conv = (1.0 if b_eff <= 1 else b_eff + 2.0) / h[_ADC_RATE]
                else:
                    rg = math.ceil(lmr / dac_num)
                    b_need = adc_bits
                    b_eff = adc_bits
                    t_conv = t_adc
                lay[r, L_ADCB] = b_eff
                lay[r, L_ADCN] = b_need
                cg = math.ceil(lmc / adc_num)
                n_pass = cycles * rg * cg * react
                g = math.ceil(math.log2(lmpe)) if lmpe > 1 else 0.0
                t_ireg = rg * cg * period + n_pass * period
                t_shift = n_pass * period
                t_demux = n_pass * demux_ns * m_in
                t_mux = n_pass * mux_ns * m_out
                t_oreg = cg * period
                t_joint = g * period
                t_adder = cg * addlog * period
                t_digital = t_ireg + t_shift + t_demux + t_mux + t_adder + t_oreg + t_joint + extra * period
                t_intra = max(tl * (adc_bits + g) - g * (g + 1) / 2, 0.0) * lmc / bw_intra
                w_out = math.ceil(-1e-9 + (adc_bits + g) * lmc * lmpe / width)
                r_merge = math.ceil(-1e-9 + lmc * mo * a * lmpe / width)  # logical outputs (copies of wrapped columns)
                merge = d_in[li] * (period + lmc * mo * lmpe * a / bw_inter)
                transfer = d_tr[li] * cout * a / bw_inter
                comp = n_pass * (t_dac + read_ns + t_conv)
                r_start = math.ceil(-1e-9 + lmr * mi * a / width)  # every input chunk is read
                c_pe = lmr / kk * mi  # input channels a PE reads (all chunks of a wrapped epitome)
                if typ == 0:
                    kp = max(kf - pf, 0.0)
                    w_first = math.ceil(-1e-9 + c_pe * kp * kp * a / width)
                    w_rowstart = math.ceil(-1e-9 + c_pe * sf * kp * a / width)
                    w_row0 = math.ceil(-1e-9 + c_pe * sf * kf * a / width)
                    w_other = math.ceil(-1e-9 + c_pe * sf * sf * a / width)
                    r_other = math.ceil(-1e-9 + sf * kf * c_pe * a / width)
                    fo_h, fw_h = float(oh), float(ow)
                    in_w = w_first + (fw_h - 1) * w_row0 + (fo_h - 1) * w_rowstart + (fo_h - 1) * (fw_h - 1) * w_other
                    in_r = fo_h * r_start + (fo_h * fw_h - fo_h) * r_other
                    npx = fo_h * fw_h
                else:
                    w_first = math.ceil(-1e-9 + cin * a / width)
                    w_rowstart = w_first
                    w_row0 = w_first
                    w_other = w_first
                    r_other = r_start
                    in_w = w_first
                    in_r = r_start
                    npx = 1.0
                if not corrected:
                    fixed = comp + t_digital + t_intra + (w_out + r_merge) * cyc + merge + transfer
                    t_first = fixed + (w_first + r_start) * cyc
                    t_row0 = fixed + (w_row0 + r_other) * cyc
                    t_rowstart = fixed + (w_rowstart + r_start) * cyc
                    t_other = fixed + (w_other + r_other) * cyc
                    lay[r, L_COMP] = npx * (comp + t_digital + t_intra)
                    lay[r, L_MOVE] = npx * (merge + transfer) + (in_w + in_r + npx * (w_out + r_merge)) * cyc
                else:
                    # memory hierarchy: line-buffer overflow re-fetches inputs (row reuse lost),
                    # output-buffer overflow spills to the global buffer; compute and data
                    # movement overlap (double buffering), so a pixel takes the slower of them
                    lneed = (c_pe * kf * iw * a) if typ == 0 else lmr * a
                    ovf_in = max(0.0, 1.0 - cap_in / lneed) if lneed > 0 else 0.0
                    # new inputs per pixel and PE: a k-row x s-column strip of its channels
                    refetch = (ovf_in * (kf - 1.0) * (c_pe * kf * sf * a) * lay[r, L_PES] if typ == 0
                               else ovf_in * lmr * a * lay[r, L_PES])
                    oneed = (lmc * lmpe * ow * a) if typ == 0 else lmc * lmpe * a
                    ovf_out = max(0.0, 1.0 - cap_out / oneed) if oneed > 0 else 0.0
                    spill = ovf_out * lmc * lmpe * a * ftiles
                    t_ref = refetch / bw_intra + spill / h[_BW_GBUF]
                    noc = merge + transfer + t_ref
                    c_fix = comp + t_digital + t_intra
                    b_fix = (w_out + r_merge) * cyc
                    t_first = max(c_fix, b_fix + (w_first + r_start) * cyc, noc)
                    t_row0 = max(c_fix, b_fix + (w_row0 + r_other) * cyc, noc)
                    t_rowstart = max(c_fix, b_fix + (w_rowstart + r_start) * cyc, noc)
                    t_other = max(c_fix, b_fix + (w_other + r_other) * cyc, noc)
                    lay[r, L_COMP] = npx * c_fix
                    t_move = npx * noc + (in_w + in_r + npx * (w_out + r_merge)) * cyc
                    lay[r, L_MOVE] = t_move
                # the pixel pipeline: finish(p) = max(arrival(p), finish(p - 1)) + t(p)
                if typ == 0:
                    prev = 0.0
                    for i in range(oh):
                        rq = min(max(i * s + k - 1 - p, 0), ih - 1)
                        for j in range(ow):
                            if i == 0:
                                t = t_first if j == 0 else t_row0
                            else:
                                t = t_rowstart if j == 0 else t_other
                            if src >= 0:
                                cq = min(max(j * s + k - 1 - p, 0), iw - 1)
                                arr = fin[sofs + rq * iw + cq]
                                if arr > prev:
                                    prev = arr
                            prev += t
                            fin[ofs + i * ow + j] = prev
                else:
                    arr = 0.0
                    if src >= 0:
                        for q in range(fo[src], fo[src + 1]):
                            if fin[q] > arr:
                                arr = fin[q]
                    fin[ofs] = arr + t_first
                # energy and power
                nb_w = in_w + npx * w_out
                nb_r = in_r + npx * r_merge
                if corrected:
                    n_pe = lay[r, L_PES]  # only the PEs that hold weights
                    chan = groups * polarity  # every crossbar has its own converters
                    adc_act = min(adc_num, lmc)
                    dac_act = min(dac_num, lmr)
                    xbars = n_pe * chan
                    # event counts: every used column of every crossbar converted once per read
                    conv = npx * cycles * react * rg * my_[li] * coe[li] * slc[li] * polarity
                    # ADC energy per conversion vs resolution: Walden regime (2^b) below ~10 bits,
                    # thermal-noise-limited (4^b) above (Murmann's ADC survey), anchored at the configured ADC
                    rel = (2.0**b_eff + 4.0**b_eff / 1024.0) / (2.0**adc_bits + 4.0**adc_bits / 1024.0)
                    ec[_C_ADC] = conv * h[_E_CONV] * rel
                    ec[_C_DAC] = npx * cycles * react * xbars * lmr * h[_E_DAC]
                    ec[_C_XBAR] = npx * cycles * react * rg * xbars * min(lmr, rpr) * lmc * activity * h[_E_CELL]
                    e_bit = 0.5 * (h[_E_BUF_R] + h[_E_BUF_W])
                    ec[_C_BUF] = ((in_r * h[_E_BUF_R] + in_w * h[_E_BUF_W]) * n_pe
                                  + npx * (w_out * h[_E_BUF_W] + r_merge * h[_E_BUF_R]) * ftiles) * width + (
                        refetch + spill) * npx * e_bit
                else:
                    n_pe = ftiles * lmpe  # MNSIM charges every PE of the layer's tiles
                    chan = groups
                    adc_act = math.ceil(lmc / omux)
                    dac_act = math.ceil(lmr / idemux)
                    pc[_C_ADC] = n_pe * groups * adc_act * p_adc
                    pc[_C_DAC] = n_pe * groups * dac_act * p_dac
                    pc[_C_XBAR] = n_pe * groups * polarity * lmr * lmc * cell_power / (idemux * omux)
                    ec[_C_ADC] = pc[_C_ADC] * npx * n_pass * t_adc
                    ec[_C_DAC] = pc[_C_DAC] * npx * n_pass * t_dac
                    ec[_C_XBAR] = pc[_C_XBAR] * npx * n_pass * read_ns
                    pbr = ftiles * (lmpe + 1) * buf_pr
                    pbw = ftiles * (lmpe + 1) * buf_pw
                    pc[_C_BUF] = pbr + pbw
                    ec[_C_BUF] = pbr * nb_r * cyc + pbw * nb_w * cyc
                ps = n_pe * chan * adc_act * shiftreg_p
                po = n_pe * chan * adc_act * reg_p
                pi = n_pe * chan * dac_act * reg_p
                pm = n_pe * chan * adc_act * mux_p_out
                pdm = n_pe * chan * dac_act * mux_p_in
                if corrected:
                    pj = max(n_pe - 1.0, 0.0) * adc_act * joint_p
                else:
                    pj = ftiles * max(lmpe - 1, 0.0) * adc_act * joint_p
                pc[_C_DIG] = ps + po + pi + pm + pdm + pj
                # digital energy (corrected: per operation, at the reference period, whatever the clock)
                ec[_C_DIG] = npx * (per / period) * (ps * t_shift + po * t_oreg + pi * t_ireg + pm * t_mux
                                                     + pdm * t_demux + pj * t_joint)
                lay[r, L_AREA] = ftiles * h[_TILE_AREA]
            elif typ == 2:
                words_c = math.ceil(-1e-9 + cin * a / width)
                t_pool = pool_cycle * math.ceil(cin / pool_units) * math.ceil(kk / 9)
                t_buf = (2.0 * kk + 2.0) * words_c * cyc
                transfer = d_tr[li] * cout * a / bw_inter + words_c * cyc
                if corrected:
                    t = max(t_pool, t_buf, transfer)
                else:
                    t = t_pool + t_buf + transfer
                prev = 0.0
                for i in range(oh):
                    rq = min(max(i * s + k - 1 - p, 0), ih - 1)
                    for j in range(ow):
                        if src >= 0:
                            cq = min(max(j * s + k - 1 - p, 0), iw - 1)
                            arr = fin[sofs + rq * iw + cq]
                            if arr > prev:
                                prev = arr
                        prev += t
                        fin[ofs + i * ow + j] = prev
                npx = float(oh * ow)
                lay[r, L_COMP] = npx * t_pool
                lay[r, L_MOVE] = npx * (t_buf + transfer)
                pc[_C_POOL] = pool_power
                ec[_C_POOL] = pool_power * npx * t_pool
                if corrected:
                    ec[_C_BUF] = npx * (2.0 * kk + 2.0) * words_c * width * 0.5 * (h[_E_BUF_R] + h[_E_BUF_W])
                else:
                    pc[_C_BUF] = buf_pr + buf_pw
                    ec[_C_BUF] = (buf_pr + buf_pw) / 2 * npx * t_buf
                lay[r, L_AREA] = h[_TILE_AREA]
            else:
                nin = tab[r, _INN]
                words_c = math.ceil(-1e-9 + cin * a / width)
                t_buf = 2 * nin * words_c * cyc
                tr = d_tr[li] * cin * a / bw_inter
                t = sum_cycle + t_buf + tr
                npx_i = oh * ow
                if corrected:
                    # the skip branch waits in the global buffer; what does not fit goes off chip
                    fmap = cin * npx_i * a
                    ovf = max(0.0, fmap - cap_g)
                    dram_l = 2.0 * ovf
                    dram_px = dram_l / npx_i
                    t = max(sum_cycle, t_buf, tr, dram_px / h[_BW_DRAM], 2 * nin * cin * a / h[_BW_GBUF])
                    ec[_C_BUF] = npx_i * 2 * nin * words_c * width * 0.5 * (h[_E_BUF_R] + h[_E_BUF_W])
                    ec[_C_DRAM] = dram_l * h[_E_DRAM]
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
                npx = float(npx_i)
                lay[r, L_COMP] = npx * sum_cycle
                lay[r, L_MOVE] = npx * (t - sum_cycle)
            if fo[li + 1] > ofs:
                lay[r, L_FIN] = fin[fo[li + 1] - 1]  # the pipeline is monotone: the last pixel ends last
                if lay[r, L_FIN] > latency:
                    latency = lay[r, L_FIN]
                if corrected:  # a layer's power: its energy over its busy span
                    busy = lay[r, L_FIN] - fin[ofs] + (lay[r, L_COMP] + lay[r, L_MOVE]) / max(fo[li + 1] - ofs, 1)
                    for c in range(NC):
                        pc[c] = ec[c] / busy if busy > 0 else 0.0
            lay[r, L_DIN] = d_in[li]
            lay[r, L_DTR] = d_tr[li]
            lay[r, L_DRAM] = dram_l
            dram_total += dram_l
            for c in range(NC):
                lay[r, L_E0 + c] = ec[c]
                lay[r, L_P0 + c] = pc[c]
                tot[n, T_E0 + c] += ec[c]
                tot[n, T_P0 + c] += pc[c]

        # ---- area and static energy ---------------------------------------------------------
        ft = float(n_t)
        if corrected:
            # buffers by size (derived sizes = the network's needs); one global buffer per chip
            buf_bits = (npe * cap_in + cap_out) * ft + cap_g
            area = ft * h[_TILE_FIXED_AREA] + buf_bits * h[_BUF_AREA]
            cells = 0.0
            for li in range(nl):
                cells += lay[l0 + li, L_XBARS] * xr * xc
            tot[n, T_E0 + _C_BUF] += buf_bits * h[_BUF_LEAK] * latency
            tot[n, T_E0 + _C_XBAR] += cells * h[_LEAK_CELL] * latency
            tot[n, T_STATIC] = (buf_bits * h[_BUF_LEAK] + cells * h[_LEAK_CELL]) * latency
        else:
            area = ft * h[_TILE_AREA]
        tot[n, T_AREA] = area
        energy = 0.0
        power = 0.0
        for c in range(NC):
            energy += tot[n, T_E0 + c]
            power += tot[n, T_P0 + c]
        tot[n, T_LAT] = latency
        tot[n, T_EN] = energy
        tot[n, T_DRAM] = dram_total
        if corrected and latency > 0:
            for c in range(NC):
                tot[n, T_P0 + c] = tot[n, T_E0 + c] / latency
            power = energy / latency
        tot[n, T_POW] = power


_STATE: dict[str, Any] = {"fn": None, "state": "unloaded"}


def load(compiled: bool = True) -> Any:
    """The kernel: numba-compiled when possible (loaded once), else the Python function."""
    if not compiled:
        return cost_kernel
    if _STATE["state"] == "unloaded":
        try:
            from numba import njit
        except ImportError as exc:
            log.info("numba unavailable (%s): the cost model runs uncompiled", exc)
            _STATE["state"] = "missing"
        else:
            try:
                fn = njit(cache=True, error_model="numpy")(cost_kernel)
            except Exception as exc:  # noqa: BLE001 - no writable cache location
                log.debug("numba on-disk cache unavailable (%s); compiling in memory", exc)
                fn = njit(cache=False, error_model="numpy")(cost_kernel)
            _STATE["fn"], _STATE["state"] = fn, "ok"
    return _STATE["fn"] if _STATE["state"] == "ok" else cost_kernel


def failed(exc: BaseException) -> None:
    """Marks the compiled kernel broken (logged): later calls run uncompiled."""
    log.warning("compiled cost-model kernel failed (%s: %s); running it uncompiled", type(exc).__name__, exc)
    _STATE["fn"], _STATE["state"] = None, "failed"


def compiled_loaded() -> bool:
    """Whether the compiled kernel is loaded in this process."""
    return _STATE["state"] == "ok"
