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


@lru_cache(maxsize=8)
def spiral_order(n_positions: int) -> np.ndarray:
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
    return out[:n_positions].copy()


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
    pos_cache: dict[int, np.ndarray] = {}

    def pos(i: int) -> np.ndarray:
        if i not in pos_cache:
            p = coords[start[i]:start[i] + ntile[i]]
            # MNSIM scans the mesh row-major (np.argwhere): order tiles that way
            order = np.lexsort((p[:, 1], p[:, 0]))
            pos_cache[i] = p[order]
        return pos_cache[i]

    for i in range(n):
        if is_sum[i]:
            if i == n - 1:
                continue
            best = 0.0
            for j in consumers[i]:
                q = pos(j)
                if len(q):
                    best = max(best, abs(q[0, 0] - global_row) + q[0, 1])
            d_tr[i] = best
            continue
        p = pos(i)
        if len(p) == 0:
            continue
        spread = np.abs(p[:, None, :] - p[None, :, :]).sum(-1).max(1) if len(p) > 1 else np.zeros(1)
        if i == n - 1:
            a = int(np.argmin(spread))
            d_in[i] = spread[a]
            d_tr[i] = 0.0
            continue
        if branch_out[i]:
            out = np.abs(p[:, 0] - global_row) + p[:, 1]
        else:
            dst = [pos(j) for j in consumers[i]]
            dst = [d for d in dst if len(d)]
            if dst:
                q = np.concatenate(dst)
                out = np.abs(p[:, None, :] - q[None, :, :]).sum(-1).max(1)
            else:
                out = np.zeros(len(p))
        if len(p) == 1:
            d_in[i], d_tr[i] = 0.0, out[0]
        else:
            a = int(np.argmin(spread + out))
            d_in[i], d_tr[i] = spread[a], out[a]
    return d_in, d_tr
