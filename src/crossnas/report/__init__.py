"""Reports: tables built as data, rendered to Markdown/HTML, plots as PNG.

Computing (``tables``) is apart from drawing (``plots``) and rendering (``render``),
so each can be tested and reused on its own.
"""

from __future__ import annotations

from crossnas.report.reference import PAPER_ROWS

__all__ = ["PAPER_ROWS"]
