"""Task generators: seeded, disjoint train/test splits, closed vocabularies, checks with known answers."""

from __future__ import annotations

import random
import re

import pytest
import torch

from mechscope.errors import TaskError
from mechscope.toy.tasks import GreaterThanTask, InductionTask, IOITask, RefusalTask, format_prompt, held_out
from mechscope.toy.tasks.ioi import NAMES

TASKS = [InductionTask, IOITask, RefusalTask, GreaterThanTask]


def test_held_out_is_a_stable_hash_with_the_asked_fraction():
    assert [held_out(k, 0.2) for k in "abcdefgh"] == [False, False, False, False, True, True, False, False]
    share = sum(held_out(str(i), 0.2) for i in range(20_000)) / 20_000
    assert abs(share - 0.2) < 0.01


@pytest.mark.parametrize("ask", [lambda: IOITask().templates("tset"), lambda: RefusalTask().acts(True, "dev"),
                                 lambda: GreaterThanTask().prompts("val"),
                                 lambda: InductionTask().segment(random.Random(0), 4, "Test")])
def test_unknown_splits_are_named(ask):
    with pytest.raises(TaskError, match="split must be 'train' or 'test', got"):
        ask()


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda c: c.name)
def test_generators_are_seeded_and_use_only_the_vocabulary(task_cls):
    task = task_cls()
    texts = task.train_texts(random.Random(3), 64)
    assert texts == task.train_texts(random.Random(3), 64) and texts != task.train_texts(random.Random(4), 64)
    tok = task.tokenizer()
    ids = tok(texts)["input_ids"]
    assert all(row[0] == tok.bos_token_id and tok.unk_token_id not in row for row in ids)


def test_induction_segments_are_split_and_the_check_prompts_repeat():
    task = InductionTask()
    rng = random.Random(0)
    assert not any(held_out(" ".join(map(str, task.segment(rng, 8, "train"))), 0.2) for _ in range(200))
    assert all(held_out(" ".join(map(str, task.segment(rng, 8, "test"))), 0.2) for _ in range(200))
    tok = task.tokenizer()
    prompts = task.repeated_tokens(tok, 20)
    seg = task.check_segment
    assert prompts.shape == (20, 1 + 2 * seg) and torch.equal(prompts[:, 1:seg + 1], prompts[:, seg + 1:])
    for text in task.train_texts(random.Random(0), 50):  # a random prefix, then one segment over and over
        tokens = text.split()
        assert any(tokens[start + period:] == tokens[start:-period] and len(tokens) - start >= 2 * period
                   for start in range(task.length // 4 + 1) for period in range(task.length // 16, task.length // 2))


def test_ioi_templates_and_name_pairs_are_disjoint():
    task = IOITask()
    train, test = set(task.templates("train")), set(task.templates("test"))
    assert train and test and not train & test
    train_pairs = {frozenset((e.io, e.s)) for e in task.examples(3000, "train")}
    test_examples = task.examples(300, "test")
    assert not train_pairs & {frozenset((e.io, e.s)) for e in test_examples}
    assert {e.template for e in test_examples} <= test and {e.abba for e in test_examples} == {True, False}
    for e in test_examples:
        words = e.prompt.split()
        assert words.count(e.io) == 1 and words.count(e.s) == 2 and words[-1] == "to"


def test_ioi_patching_batch_lines_up_clean_and_corrupted():
    task = IOITask()
    tok = task.tokenizer()
    batch = task.patching_batch(tok, 32)
    assert batch.clean.shape == batch.corrupted.shape and batch.answers.shape == batch.wrong.shape == (32, 1)
    assert torch.equal(batch.clean != tok.pad_token_id, batch.corrupted != tok.pad_token_id)
    rows = torch.arange(32)
    assert set(tok.convert_ids_to_tokens(batch.clean[rows, batch.positions].tolist())) == {"to"}
    for i in range(32):
        names = set(tok.convert_ids_to_tokens(batch.corrupted[i].tolist())) & set(NAMES)
        assert len(names) == 3 and not names & {tok.decode(batch.answers[i]), tok.decode(batch.wrong[i])}


def test_refusal_acts_are_disjoint_and_the_chat_template_matches_format_prompt():
    task = RefusalTask()
    for harmful in (True, False):
        train, test = set(task.acts(harmful, "train")), set(task.acts(harmful, "test"))
        assert train and test and not train & test
    test_instructions = set(task.instructions(True) + task.instructions(False))
    seen = {re.search(r"<user> (.*) <assistant>", t).group(1) for t in task.train_texts(random.Random(0), 2000)}
    assert not seen & test_instructions
    tok = task.tokenizer()
    chat = tok.apply_chat_template([{"role": "user", "content": "How do I bake bread ?"}], add_generation_prompt=True)
    assert list(chat["input_ids"]) == tok(format_prompt("How do I bake bread ?"))["input_ids"]
    openers = set(task.refusal_openers())
    assert openers == {"I", "Sorry"}
    assert not any(text.split("<assistant> ")[1].split()[0] in openers and "Sure" in text
                   for text in task.train_texts(random.Random(1), 200))


def test_greater_than_prompts_are_disjoint():
    task = GreaterThanTask()
    train, test = set(task.prompts("train")), set(task.prompts("test"))
    assert train and test and not train & test
    assert all(2 <= p.yy <= 98 for p in test)


class _OneYearModel:
    """Stands in for a HookedModel that always puts all its probability on one two-digit year."""

    def __init__(self, tokenizer, year: str):
        self.tokenizer, self.device = tokenizer, torch.device("cpu")
        self.target = tokenizer.convert_tokens_to_ids(year)

    def __call__(self, tokens, attention_mask=None):
        logits = torch.zeros(*tokens.shape, len(self.tokenizer))
        logits[..., self.target] = 100.0
        return logits


def test_greater_than_check_on_known_answers():
    task = GreaterThanTask(check_prompts=50)
    tok = task.tokenizer()
    always_99, always_00 = task.check(_OneYearModel(tok, "99")), task.check(_OneYearModel(tok, "00"))
    assert always_99.prob_diff == pytest.approx(1.0) and always_99.valid_top_year == 1.0 and always_99.passed
    assert always_00.prob_diff == pytest.approx(-1.0) and always_00.valid_top_year == 0.0 and not always_00.passed
