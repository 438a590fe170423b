"""The winner architecture table of the report: per choice layer, with EPIM wraps when searched."""

from __future__ import annotations

from typing import Any

from crossnas.report.build import arch_table


def _winner(arch: str, space_wraps: list[int] | None) -> dict[str, Any]:
    space: dict[str, Any] = {"n_layers": 3}
    if space_wraps is not None:
        space["epitome"] = space_wraps
    convs = [{"type": "conv", "crossbars": c} for c in (4, 4, 8, 8, 2)]  # V: 2 convs, R: 3 convs
    return {"label": "w0.99", "model": {"arch": arch, "space": space},
            "eval": {"layers": [*convs, {"type": "fc", "out_shape": [10], "w_bits": 7, "a_bits": 7, "crossbars": 1}]}}


def test_epitome_column_shows_each_layers_wrap() -> None:
    table, words = arch_table(_winner("V16w7a7e2-S-R32w5a5e4", [1, 2, 4]))
    assert list(table.headers) == ["layer", "block", "width", "w bits", "a bits", "epitome m", "crossbars"]
    assert [r[5] for r in table.rows] == [2, "–", 4, "–"]
    assert [r[-1] for r in table.rows] == [8, 0, 18, 1]  # crossbars: the block's convs, then the head fc
    assert "wrapped 4x" in words[1] and "wrapped" not in words[0].replace("wrapped 2x", "")


def test_dense_space_keeps_the_old_columns() -> None:
    table, words = arch_table(_winner("V16w7a7-S-R32w5a5", None))
    assert list(table.headers) == ["layer", "block", "width", "w bits", "a bits", "crossbars"]
    assert all(len(r) == 6 for r in table.rows) and not any("wrapped" in w for w in words)
    table, _ = arch_table(_winner("V16w7a7-S-R32w5a5", [1, 2]))  # searched, none chosen: the column says 1
    assert [r[5] for r in table.rows] == [1, "–", 1, "–"]
