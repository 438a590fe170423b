"""Render a report document to Markdown and to one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Table:
    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    caption: str
    path: Path


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: Sequence[str] = ()
    tables: Sequence[Table] = ()
    figures: Sequence[Figure] = ()


@dataclass(frozen=True)
class Document:
    title: str
    sections: Sequence[Section] = field(default_factory=list)


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def to_markdown(doc: Document, base: Path) -> str:
    """Markdown with images linked relative to ``base`` (the report's folder)."""
    out = [f"# {doc.title}", ""]
    for sec in doc.sections:
        out += [f"## {sec.title}", ""]
        for p in sec.paragraphs:
            out += [p, ""]
        for t in sec.tables:
            if t.caption:
                out += [f"**{t.caption}**", ""]
            out.append("| " + " | ".join(t.headers) + " |")
            out.append("|" + "|".join("---" for _ in t.headers) + "|")
            for r in t.rows:
                out.append("| " + " | ".join(_cell(c).replace("|", "\\|") for c in r) + " |")
            out.append("")
            if t.note:
                out += [f"*{t.note}*", ""]
        for f in sec.figures:
            rel = f.path.relative_to(base) if f.path.is_relative_to(base) else f.path
            out += [f"![{f.caption}]({rel.as_posix()})", "", f"*{f.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:0.6em 0 1.2em}th,td{border:1px solid #ccc;padding:4px 9px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}caption{font-weight:600;text-align:left;padding-bottom:4px}
tr.ref td{color:#666;font-style:italic}figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:0.9em}
.note{color:#666;font-size:0.9em}
"""


def to_html(doc: Document) -> str:
    """One HTML file with the images embedded (base64), no external resources."""
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc.title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(doc.title)}</h1>"]
    for sec in doc.sections:
        out.append(f"<h2>{e(sec.title)}</h2>")
        for p in sec.paragraphs:
            out.append(f"<p>{e(p)}</p>")
        for t in sec.tables:
            out.append("<table>")
            if t.caption:
                out.append(f"<caption>{e(t.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in t.headers) + "</tr>")
            for r in t.rows:
                cls = " class='ref'" if any("reported in the paper" in str(c) for c in r) else ""
                out.append(f"<tr{cls}>" + "".join(f"<td>{e(_cell(c))}</td>" for c in r) + "</tr>")
            out.append("</table>")
            if t.note:
                out.append(f"<p class='note'>{e(t.note)}</p>")
        for f in sec.figures:
            data = base64.b64encode(f.path.read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{e(f.caption)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{e(f.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
