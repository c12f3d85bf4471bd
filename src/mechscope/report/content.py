"""What a report says, independent of how it is rendered: sections of paragraphs, tables and figures whose
inline parts are plain text or Facts (rendered with a link to the value's file and JSON pointer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mechscope.report.evidence import Fact



@dataclass(frozen=True)
class Link:
    """A plain link to an artefact file or directory (no value is stated)."""

    text: str
    target: Path


Inline = str | Fact | Link | None  # None renders as "—" (the artefact does not record it)
Cell = Inline | list  # a table cell: one inline part or several in a row
NOT_ASSESSED = "not assessed"


@dataclass
class Paragraph:
    parts: list[Inline]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]


@dataclass
class Figure:
    image: Path  # a PNG, embedded as a data URI
    caption: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""
    gaps: list[str] = field(default_factory=list)  # what the section could not assess, and why

    def __post_init__(self):
        self.anchor = self.anchor or "-".join(re.findall(r"[a-z0-9]+", self.title.lower()))

    def say(self, *parts: Inline) -> "Section":
        self.blocks.append(Paragraph(list(parts)))
        return self

    def table(self, header: list[str], rows: list[list[Cell]]) -> "Section":
        if rows:
            self.blocks.append(Table(header, rows))
        return self

    def not_assessed(self, what: str, reason: str) -> "Section":
        self.gaps.append(f"{what}: {reason}")
        return self.say(f"{what}: {NOT_ASSESSED} — {reason}.")


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]
