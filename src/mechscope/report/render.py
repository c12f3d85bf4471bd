"""Render a Report as one self-contained HTML file (inline CSS, figures as data URIs, no script, no network)
and as Markdown with the same facts; every Fact links to its file and JSON pointer, relative to the report."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from mechscope.report.content import Figure, Link, Paragraph, Report, Table
from mechscope.report.evidence import Fact
from mechscope.report.json_pointer import fragment

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1b1f24}
h1{font-size:1.7em;margin-bottom:0}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
.subtitle{color:#57606a;margin-top:.2em}nav ol{columns:2}
table{border-collapse:collapse;margin:.8em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f6f8fa}
a.fact{color:#0550ae;text-decoration:none;border-bottom:1px dotted #0550ae;font-variant-numeric:tabular-nums}
.none{color:#8c959f}figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#57606a;font-size:13px}
@media print{a.fact{border:none;color:inherit}nav{display:none}}
"""


def _href(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target, out)).as_posix()


def _inline(part, out: Path, fact, link, text, none: str) -> str:
    """One inline part in a format given by its `fact(text, href)`, `link(text, href)` and `text` renderers."""
    if part is None:
        return none
    if isinstance(part, list):
        return "".join(_inline(p, out, fact, link, text, none) for p in part)
    if isinstance(part, Fact):
        return fact(part.text(), _href(part.file, out) + fragment(part.path))
    if isinstance(part, Link):
        return link(part.text, _href(part.target, out))
    return text(str(part))


def _inline_html(part, out: Path) -> str:
    return _inline(part, out, lambda t, h: f'<a class="fact" href="{html.escape(h, quote=True)}">{html.escape(t)}</a>',
                   lambda t, h: f'<a href="{html.escape(h, quote=True)}">{html.escape(t)}</a>', html.escape,
                   '<span class="none">—</span>')


def _block_html(block, out: Path) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline_html(block.parts, out)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        rows = "".join("<tr>" + "".join(f"<td>{_inline_html(cell, out)}</td>" for cell in row) + "</tr>"
                       for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.image.read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(block.caption, quote=True)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(report: Report, out: Path) -> str:
    """The report as one HTML page; links are relative to `out`, the folder the page is written to."""
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in report.sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>'
                   + "".join(_block_html(b, out) for b in s.blocks) + "</section>" for s in report.sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>'
            f'<h1>{html.escape(report.title)}</h1><p class="subtitle">{html.escape(report.subtitle)}</p>'
            f"<nav><ol>{toc}</ol></nav>{body}</body></html>\n")


def _md_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")


def _inline_md(part, out: Path) -> str:
    return _inline(part, out, lambda t, h: f"[{_md_text(t)}](<{h}>)", lambda t, h: f"[{_md_text(t)}](<{h}>)",
                   _md_text, "—")


def _block_md(block, out: Path) -> str:
    if isinstance(block, Paragraph):
        return _inline_md(block.parts, out)
    if isinstance(block, Table):
        lines = ["| " + " | ".join(_md_text(h) for h in block.header) + " |", "|" + "---|" * len(block.header)]
        lines += ["| " + " | ".join(_inline_md(cell, out) for cell in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Figure):
        return f"![{_md_text(block.caption)}](<{_href(block.image, out)}>)\n\n*{_md_text(block.caption)}*"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(report: Report, out: Path) -> str:
    """The same report in Markdown (figures referenced as files beside it)."""
    parts = [f"# {report.title}", f"*{_md_text(report.subtitle)}*"]
    for section in report.sections:
        parts.append(f"## {section.title}")
        parts += [_block_md(block, out) for block in section.blocks]
    return "\n\n".join(parts) + "\n"
