"""Pairs that do not line up are dropped or repaired, and the report counts each reason exactly."""

from __future__ import annotations

from mechscope.tasks import IOI, PromptPair, build_batch
from mechscope.tasks.batch import ANSWER_SPLITS, LENGTH_MISMATCH, SAME_ANSWER, WRONG_SPLITS, tokenize_pair
from mechscope.tasks.ioi import NAME_REPAIR

from tests.tasks.conftest import SPLIT_NAMES


def test_split_names_are_dropped_with_the_reason_each_one_fails(split_names_tokenizer):
    tok, n = split_names_tokenizer, 300
    task = IOI(repair=False)
    pairs = task.pairs(tok, n)
    split = set(SPLIT_NAMES)
    expected = {ANSWER_SPLITS: 0, WRONG_SPLITS: 0, LENGTH_MISMATCH: 0}
    for pair in pairs:  # the answer is checked first, then the wrong answer, then the token counts
        io, s, swapped = pair.meta["io"], pair.meta["s"], pair.meta["corrupted_names"]
        if io in split:
            expected[ANSWER_SPLITS] += 1
        elif s in split:
            expected[WRONG_SPLITS] += 1
        elif split & set(swapped):
            expected[LENGTH_MISMATCH] += 1
    batch = task.batch(tok, n)
    assert all(count > 0 for count in expected.values())
    assert batch.report.dropped == expected and batch.report.repaired == {}
    assert batch.report.kept == len(batch) == n - sum(expected.values()) and batch.report.requested == n


def test_repair_swaps_split_names_for_whole_ones_and_keeps_every_pair(split_names_tokenizer):
    tok, n = split_names_tokenizer, 300
    task = IOI()
    assert set(task.usable_names(tok)) == set(IOI(repair=False).usable_names(tok)) - set(SPLIT_NAMES)
    broken = sum(bool({ex.io, ex.s} & set(SPLIT_NAMES)) for ex in task.examples(n))
    batch = task.batch(tok, n)
    assert batch.report.kept == n and batch.report.dropped == {} and batch.report.repaired == {NAME_REPAIR: broken}
    assert broken > 0 and str(batch.report) == f"kept {n} of {n} pairs; repaired {broken}: {NAME_REPAIR}"
    for row, meta in enumerate(batch.meta):  # [CLS] ... to [SEP]: the answer is read at "to", not at [SEP]
        ids = batch.clean[row, :int(batch.attention_mask[row].sum())].tolist()
        assert tok.convert_ids_to_tokens(ids)[-2:] == ["to", "[SEP]"] and batch.positions[row] == len(ids) - 2
        assert tok.decode(batch.answers[row]) == meta["io"] and tok.decode(batch.wrong[row]) == meta["s"]


def test_clean_and_corrupted_differ_only_at_the_swapped_names(split_names_tokenizer):
    tok = split_names_tokenizer
    for corruption, changed in (("abc", 3), ("s2_io", 1)):
        batch = IOI(corruption=corruption).batch(tok, 50)
        assert (batch.clean != batch.corrupted).sum(1).tolist() == [changed] * 50


def test_a_pair_with_the_same_answer_on_both_sides_is_dropped(split_names_tokenizer):
    same = PromptPair("When Mary and John went to the store, John gave a book to", "x", (" Mary",), (" Mary",))
    assert tokenize_pair(same, split_names_tokenizer) == SAME_ANSWER
    batch = build_batch([same, IOI().pairs(split_names_tokenizer, 1)[0]], split_names_tokenizer)
    assert batch.report.dropped == {SAME_ANSWER: 1} and len(batch) == 1
