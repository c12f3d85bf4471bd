"""User pairs from JSONL: answer sets, metadata, seeded splits, and errors that name the line and the field."""

from __future__ import annotations

import json

import pytest

from mechscope.errors import TaskError
from mechscope.tasks import JsonlPairs, make_task, read_pairs
from mechscope.tasks.batch import LENGTH_MISMATCH

ROWS = [{"clean": "When Mary and John went to the store, John gave a book to", "corrupted":
         "When Alice and Bob went to the store, Tom gave a book to", "answer": " Mary", "wrong": " John", "id": 0},
        {"clean": "The capital of France is", "corrupted": "The capital of Italy is",
         "answer": [" Paris"], "wrong": " Rome", "id": 1},
        {"clean": "The war lasted from the year 1750 to the year 17", "corrupted":
         "The war lasted from the year 1701 to the year 17", "answer": ["51", "52"], "wrong": ["49", "50"], "id": 2}]


def write(path, rows: list) -> str:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return str(path)


def test_pairs_keep_answer_sets_and_metadata(tmp_path, byte_level_tokenizer):
    path = write(tmp_path / "pairs.jsonl", ROWS)
    pairs = read_pairs(path)
    assert [p.answers for p in pairs] == [(" Mary",), (" Paris",), ("51", "52")] and pairs[2].wrong == ("49", "50")
    assert [p.meta for p in pairs] == [{"id": 0}, {"id": 1}, {"id": 2}]
    task = make_task("jsonl", path=path, test_fraction=0.0)
    batch = task.batch(byte_level_tokenizer, split="train")
    assert batch.report.kept == batch.report.requested == 3
    answers = {meta["id"]: [i for i in row if i >= 0] for meta, row in zip(batch.meta, batch.answers.tolist())}
    assert [byte_level_tokenizer.convert_ids_to_tokens(answers[i]) for i in range(3)] == [["ĠMary"], ["ĠParis"],
                                                                                          ["51", "52"]]


def test_a_pair_whose_corruption_changes_the_token_count_is_dropped(tmp_path, byte_level_tokenizer):
    rows = ROWS[:2] + [dict(ROWS[0], corrupted="When Alice and Bob went to the big store, Tom gave a book to", id=3)]
    batch = JsonlPairs(write(tmp_path / "pairs.jsonl", rows), test_fraction=0.0).batch(byte_level_tokenizer,
                                                                                      split="train")
    assert batch.report.dropped == {LENGTH_MISMATCH: 1} and sorted(m["id"] for m in batch.meta) == [0, 1]


def test_splits_are_disjoint_and_seeded(tmp_path, byte_level_tokenizer):
    rows = [dict(ROWS[0], id=i, clean=ROWS[0]["clean"].replace("book", obj)) for i, obj in
            enumerate(["book", "ball", "key", "ring", "bag", "kite", "drink", "letter", "snack"])]
    task = JsonlPairs(write(tmp_path / "pairs.jsonl", rows), test_fraction=0.5)
    train = {p.meta["id"] for p in task.pairs(None, 100, "train")}
    test = {p.meta["id"] for p in task.pairs(None, 100, "test")}
    assert train and test and not train & test and train | test == set(range(9))
    assert task.pairs(None, 3, "train", seed=4) == task.pairs(None, 3, "train", seed=4)


@pytest.mark.parametrize("line, message", [
    ("{not json", r"pairs.jsonl:2: expected a JSON object, got invalid JSON"),
    ('["a", "b"]', r"pairs.jsonl:2: expected a JSON object with fields clean, corrupted, answer, wrong, got list"),
    ('{"clean": "a", "corrupted": "b", "answer": " c"}', r"pairs.jsonl:2: missing field 'wrong'"),
    ('{"clean": "a", "corrupted": 7, "answer": " c", "wrong": " d"}',
     r"pairs.jsonl:2: field 'corrupted' must be a non-empty string, got 7"),
    ('{"clean": "a", "corrupted": "b", "answer": 3, "wrong": " d"}',
     r"pairs.jsonl:2: field 'answer' must be a non-empty string or a non-empty list of them, got 3"),
    ('{"clean": "a", "corrupted": "b", "answer": " c", "wrong": []}',
     r"pairs.jsonl:2: field 'wrong' must be a non-empty string or a non-empty list of them, got \[\]"),
])
def test_errors_name_the_line_and_the_field(tmp_path, line, message):
    path = write(tmp_path / "pairs.jsonl", [ROWS[0], line])
    with pytest.raises(TaskError, match=message):
        read_pairs(path)


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(TaskError, match="expected a readable JSONL file of pairs, got .*nowhere.jsonl"):
        read_pairs(tmp_path / "nowhere.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TaskError, match="expected at least one pair in .*empty.jsonl, got an empty file"):
        read_pairs(tmp_path / "empty.jsonl")
