"""Walk every link of a rendered report: open the file, resolve the JSON pointer, compare with the printed text."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from mechscope.report.json_pointer import from_fragment, resolve


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text)))
            self._href = None


def html_links(page: Path) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def markdown_links(page: Path) -> list[tuple[str, str]]:
    text = page.read_text()
    return [(href, re.sub(r"\\(.)", r"\1", label)) for label, href in
            re.findall(r"(?<![!\\])\[((?:[^\]\\]|\\.)*)\]\(<([^>]*)>\)", text)]  # an escaped \[ opens no link


def printed_equals(value, text: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value) == text
    if isinstance(value, float) and math.isnan(value):
        return text == "NaN"
    return math.isclose(float(text), value, rel_tol=1e-3, abs_tol=1e-12)


def check_links(page: Path, links: list[tuple[str, str]]) -> int:
    """Assert every link's target exists and every pointer's value is the printed text; returns the facts checked."""
    checked = 0
    for href, text in links:
        if href.startswith("#"):
            continue
        path, _, fragment = href.partition("#")
        target = (page.parent / unquote(path)).resolve()
        assert target.exists(), f"{href} points at a missing file"
        if fragment:
            value = resolve(json.loads(target.read_text()), from_fragment(fragment))
            assert printed_equals(value, text), f"{href}: printed {text!r}, file holds {value!r}"
            checked += 1
    return checked
