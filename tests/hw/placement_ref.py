"""Tile placement on the chip mesh and the distances MNSIM derives from it.

MNSIM-2.0 (``Tile_Connection = 2``) fills the tile mesh in a square spiral that starts
at the corner (0, 0) and grows outwards: (0,0), (0,1), (1,1), (1,0), (2,0), (2,1), (2,2),
(1,2), (0,2), (0,3), ... Each layer takes the next ``tilenum`` positions. For every
layer an *aggregation tile* is chosen among its own tiles so that the largest hop count
to its other tiles (``inLayer_distance``) plus the largest hop count to the tiles of
its consumers (``transLayer_distance``) is smallest. A layer whose consumers are all
element-wise sums sends to the global buffer, which sits at (rows/2, 0).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def spiral_order(n_positions: int) -> np.ndarray:
    """Mesh coordinates of the first ``n_positions`` tiles in MNSIM's spiral order (cached)."""
    side = 64
    while side * side < n_positions:
        side *= 2
    return _spiral(side * side)[:n_positions]


@lru_cache(maxsize=4)
def _spiral(n_positions: int) -> np.ndarray:
    """Mesh coordinates of the first ``n_positions`` tiles in MNSIM's spiral order.

    Returns:
        int array of shape ``(n_positions, 2)``: (row, col) of tile ``t``.
    """
    side = int(np.ceil(np.sqrt(max(n_positions, 1))))
    out = np.empty((side * side, 2), dtype=np.int64)
    out[0] = (0, 0)
    t = 1
    # Shell s (s >= 1) covers max(row, col) == s. Odd s: go down column s from row 0 then left
    # along row s; even s: go right along row s from col 0 then up column s.
    for s in range(1, side):
        if s % 2 == 1:
            for r in range(0, s + 1):
                out[t] = (r, s)
                t += 1
            for c in range(s - 1, -1, -1):
                out[t] = (s, c)
                t += 1
        else:
            for c in range(0, s + 1):
                out[t] = (s, c)
                t += 1
            for r in range(s - 1, -1, -1):
                out[t] = (r, s)
                t += 1
    out = out[:n_positions].copy()
    out.setflags(write=False)
    return out


def mesh_coords(n_tiles: int, rows: int, cols: int, connection: int = 2) -> np.ndarray:
    """Coordinates of tiles 0..n_tiles-1 for a placement order.

    ``connection`` 0 = row-major, 1 = snake, 2 = spiral (MNSIM default), 3 = zigzag
    (treated as snake). Tiles beyond the mesh continue the order outside it (MNSIM
    refuses such networks; we still cost them).
    """
    if connection == 2:
        if rows == cols:
            return spiral_order(max(n_tiles, 1))[:n_tiles]
        full = spiral_order(max(rows, cols) ** 2 + max(n_tiles, 1))
        inside = full[(full[:, 0] < rows) & (full[:, 1] < cols)]
        if n_tiles <= len(inside):
            return inside[:n_tiles]
        outside = full[(full[:, 0] >= rows) | (full[:, 1] >= cols)]
        return np.concatenate([inside, outside])[:n_tiles]
    t = np.arange(n_tiles)
    r, c = t // cols, t % cols
    if connection in (1, 3):
        c = np.where(r % 2 == 1, cols - 1 - c, c)
    return np.stack([r, c], axis=1)


def layer_distances(
    coords: np.ndarray,
    start: np.ndarray,
    ntile: np.ndarray,
    consumers: list[list[int]],
    branch_out: np.ndarray,
    is_sum: np.ndarray,
    global_row: float,
) -> tuple[np.ndarray, np.ndarray]:
    """inLayer and transLayer distances of every layer, as MNSIM computes them.

    The largest Manhattan distance from a tile A to a set of tiles is
    ``max(uA - min u, max u - uA, vA - min v, max v - vA)`` with ``u = x + y`` and
    ``v = x - y``, so each layer costs O(tiles). Ties between candidate aggregation tiles
    go to the first in row-major mesh order, as in MNSIM's ``np.argwhere`` scan.

    Args:
        coords: ``(T, 2)`` tile coordinates in placement order.
        start: first tile index of each layer ``(L,)``.
        ntile: tiles of each layer ``(L,)`` (0 for element_sum).
        consumers: for each layer the indices of the layers that read it.
        branch_out: ``(L,)`` bool, all consumers are element_sum layers.
        is_sum: ``(L,)`` bool, the layer is an element_sum.
        global_row: row of the global buffer (rows / 2).

    Returns:
        ``(d_in, d_trans)`` float arrays ``(L,)``.
    """
    n = len(start)
    d_in = np.zeros(n)
    d_tr = np.zeros(n)
    if len(coords) == 0:
        return d_in, d_tr
    x = coords[:, 0]
    y = coords[:, 1]
    u = x + y
    v = x - y
    big = int(coords.max()) + 2
    rm = x * big + y  # row-major rank
    ext: list[tuple[int, int, int, int] | None] = []
    first_rm: list[int] = []
    for i in range(n):
        if ntile[i] == 0:
            ext.append(None)
            first_rm.append(-1)
            continue
        s0, s1 = start[i], start[i] + ntile[i]
        uu, vv = u[s0:s1], v[s0:s1]
        ext.append((int(uu.min()), int(uu.max()), int(vv.min()), int(vv.max())))
        first_rm.append(s0 + int(np.argmin(rm[s0:s1])))
    rank_scale = big * big + 1
    for i in range(n):
        if is_sum[i]:
            if i == n - 1:
                continue
            best = 0.0
            for j in consumers[i]:
                if ntile[j]:
                    t = first_rm[j]
                    best = max(best, abs(x[t] - global_row) + y[t])
            d_tr[i] = best
            continue
        e = ext[i]
        if e is None:
            continue
        s0, s1 = start[i], start[i] + ntile[i]
        uu, vv = u[s0:s1], v[s0:s1]
        if ntile[i] > 1:
            spread = np.maximum(np.maximum(uu - e[0], e[1] - uu), np.maximum(vv - e[2], e[3] - vv))
        else:
            spread = np.zeros(1, dtype=np.int64)
        if i == n - 1:
            a = int(np.argmin(spread * rank_scale + rm[s0:s1]))
            d_in[i] = spread[a]
            continue
        if branch_out[i]:
            out = np.abs(x[s0:s1] - global_row) + y[s0:s1]
        else:
            dst = [d for d in (ext[j] for j in consumers[i]) if d is not None]
            if dst:
                umin = min(d[0] for d in dst)
                umax = max(d[1] for d in dst)
                vmin = min(d[2] for d in dst)
                vmax = max(d[3] for d in dst)
                out = np.maximum(np.maximum(uu - umin, umax - uu), np.maximum(vv - vmin, vmax - vv))
            else:
                out = np.zeros(ntile[i], dtype=np.int64)
        if ntile[i] == 1:
            d_in[i], d_tr[i] = 0.0, float(out[0])
        else:
            score = spread + out
            if branch_out[i] and global_row != int(global_row):
                a = int(np.lexsort((rm[s0:s1], score))[0])
            else:
                a = int(np.argmin(score.astype(np.int64) * rank_scale + rm[s0:s1]))
            d_in[i], d_tr[i] = float(spread[a]), float(out[a])
    return d_in, d_tr
