"""Text sources: every input kind, the pydocs corpus, and clear errors for bad input."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mechscope.data import pydocs, text_source
from mechscope.data import pydocs_corpus as pydocs_module
from mechscope.errors import DataError


def test_txt_folder_jsonl_parquet_and_iterables(tmp_path):
    (tmp_path / "b.txt").write_text("second file")
    (tmp_path / "a.txt").write_text("first file")
    assert list(text_source(tmp_path)) == ["first file", "second file"]  # sorted, deterministic
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": t}) for t in ["x y", "z"]) + "\n")
    assert list(text_source(jsonl, column="body")) == ["x y", "z"]
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["p", "q"]}), parquet)
    assert list(text_source(parquet)) == ["p", "q"]
    assert list(text_source(["one", "two"])) == ["one", "two"]


@pytest.mark.parametrize("content, match", [("", "no documents"), ('{"other": 1}\n', "no 'text' field"),
                                            ("{not json\n", "not valid JSON")])
def test_bad_jsonl_is_named(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        list(text_source(path))


def test_missing_source_and_bad_parquet_column(tmp_path):
    with pytest.raises(DataError, match="pydocs"):
        text_source(tmp_path / "nope.txt")
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"body": ["p"]}), parquet)
    with pytest.raises(DataError, match="no column 'text'"):
        list(text_source(parquet))
    (tmp_path / "corrupt.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        list(text_source(tmp_path / "corrupt.parquet"))


def test_pydocs_is_deterministic_deduplicated_and_capped():
    first = list(pydocs(max_chars=200_000))
    assert first == list(pydocs(max_chars=200_000))
    assert len(first) == len(set(first)) > 50
    assert sum(map(len, first)) <= 200_000
    assert all(doc.isascii() and len(doc.split()) >= 8 for doc in first)


def test_pydocs_parses_without_importing(tmp_path, monkeypatch):
    (tmp_path / "boom.py").write_text('"""This module docstring should be read without running the module."""\n'
                                      "raise SystemExit('imported!')\n")
    monkeypatch.setattr(pydocs_module, "roots", lambda: [tmp_path])
    assert list(pydocs_module.pydocs()) == ["This module docstring should be read without running the module."]


def test_hugging_face_dataset_from_a_local_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["first record", "second record"]}).save_to_disk(str(tmp_path / "ds"))
    assert list(text_source(f"hf:{tmp_path / 'ds'}", column="body")) == ["first record", "second record"]
    with pytest.raises(DataError, match="not a local directory"):
        list(text_source(f"hf:{tmp_path / 'missing'}"))
