"""Every generator is seeded, keeps its splits apart and lines up on every kind of tokenizer."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import TaskError
from mechscope.tasks import IOI, FactualRecall, GreaterThan, Induction, Refusal, TaskBatch, make_task
from mechscope.tasks.batch import ANSWER_MERGES, ANSWER_SPLITS, LENGTH_MISMATCH
from mechscope.tasks.factual import RELATIONS
from mechscope.tasks.greater_than import GreaterThanPrompt
from mechscope.tasks.ioi import NAMES, IOIExample
from mechscope.tasks.prose import attach_punctuation
from mechscope.tasks.refusal import HELPFUL_OPENERS, REFUSAL_OPENERS
from mechscope.toy.tasks import format_prompt
from mechscope.toy.word_tokenizer import word_tokenizer

from tests.tasks.conftest import corpus

TOKENIZERS = ["smollm2_tokenizer", "byte_level_tokenizer", "split_names_tokenizer", "organism_tokenizer",
              "minilm_tokenizer"]
TEXT_TASKS = ["ioi", "greater-than", "refusal", "factual"]
NO_TWO_DIGIT_YEARS = {("greater-than", "smollm2_tokenizer"): ANSWER_SPLITS,  # "1", "7", "3", "2"
                      ("greater-than", "split_names_tokenizer"): ANSWER_MERGES,  # WordPiece: "1732" is one word
                      ("greater-than", "minilm_tokenizer"): ANSWER_MERGES}


@pytest.fixture(scope="session")
def organism_tokenizer():
    """The organisms' kind of tokenizer: word level, <bos> first, years as digit pairs, a chat template."""
    from mechscope.toy.tasks.refusal import CHAT_TEMPLATE
    from mechscope.toy.word_tokenizer import pretokenize

    words = {w for text in corpus() for w in pretokenize(text, digit_pairs=True)}
    words |= {f"{y:02d}" for y in range(100)} | set(REFUSAL_OPENERS + HELPFUL_OPENERS)
    return word_tokenizer(words, ("<user>", "<assistant>"), digit_pairs=True, chat_template=CHAT_TEMPLATE)


def same(a: TaskBatch, b: TaskBatch) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("clean", "corrupted", "answers", "wrong"))


@pytest.mark.parametrize("name", TEXT_TASKS + ["induction"])
def test_batches_repeat_with_a_seed_and_change_with_another(name, byte_level_tokenizer):
    task = make_task(name)
    n = 8 if name == "factual" else 32  # the fact set is small: a quarter of it per batch
    first = task.batch(byte_level_tokenizer, n, "train", seed=1)
    assert same(first, make_task(name).batch(byte_level_tokenizer, n, "train", seed=1))
    assert not same(first, task.batch(byte_level_tokenizer, n, "train", seed=2))


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
@pytest.mark.parametrize("name", TEXT_TASKS + ["induction"])
def test_kept_pairs_line_up_and_answers_are_single_tokens(name, tokenizer, request):
    tok = request.getfixturevalue(tokenizer)
    if (name, tokenizer) in NO_TWO_DIGIT_YEARS:
        with pytest.raises(TaskError, match=f"kept 0 of 40 pairs; dropped 40: {NO_TWO_DIGIT_YEARS[name, tokenizer]}"):
            make_task(name).batch(tok, 40)
        return
    batch = make_task(name).batch(tok, 40)
    report = batch.report
    assert report.kept == len(batch) > 0 and report.kept + sum(report.dropped.values()) == report.requested
    assert torch.equal((batch.clean == batch.corrupted).logical_not() & (batch.attention_mask == 0),
                       torch.zeros_like(batch.clean, dtype=torch.bool))  # padding is shared
    lengths = batch.attention_mask.sum(1)
    assert (batch.positions < lengths).all() and (batch.answers[:, 0] >= 0).all()
    for row in range(len(batch)):  # each answer is one token that decodes to the whole completion
        ids = [int(i) for i in batch.answers[row] if i >= 0]
        assert len(set(ids)) == len(ids) and not set(ids) & set(batch.wrong[row].tolist())
        if name == "ioi":
            assert tok.decode(ids).strip().lower() == batch.meta[row]["io"].lower()  # MiniLM is uncased
            assert tok.convert_ids_to_tokens(int(batch.clean[row, batch.positions[row]])) in ("to", "Ġto")


def test_ioi_on_smollm2_repairs_the_names_it_splits(smollm2_tokenizer):
    tok = smollm2_tokenizer
    usable = IOI().usable_names(tok)
    assert "Olga" not in usable and {"Mary", "John", "Alice"} <= set(usable)  # " Olga" is " Ol" + "ga"
    broken = sum(bool({ex.io, ex.s} - set(usable)) for ex in IOI().examples(200))
    batch = IOI().batch(tok, 200)
    assert batch.report.kept == 200 and sum(batch.report.repaired.values()) == broken
    rows = torch.arange(200)
    assert set(tok.convert_ids_to_tokens(batch.clean[rows, batch.positions].tolist())) == {"Ġto"}
    assert (batch.clean != batch.corrupted).sum(1).tolist() == [3] * 200
    for row in range(0, 200, 20):  # the tokens decode back to the sentence as prose
        meta = batch.meta[row]
        example = IOIExample(meta["template"], meta["io"], meta["s"], meta["place"], meta["obj"], meta["abba"])
        assert tok.decode(batch.clean[row, :int(batch.positions[row]) + 1]) == attach_punctuation(example.prompt)


def test_ioi_splits_keep_templates_and_name_pairs_apart():
    task = IOI()
    train_pairs = {frozenset((e.io, e.s)) for e in task.examples(2000, "train")}
    test = task.examples(300, "test")
    assert not train_pairs & {frozenset((e.io, e.s)) for e in test}
    assert not set(task.templates("train")) & {e.template for e in test}


def test_greater_than_answer_sets_are_the_later_years(organism_tokenizer):
    batch = GreaterThan().batch(organism_tokenizer, 20)
    for row, meta in enumerate(batch.meta):
        later = organism_tokenizer.convert_ids_to_tokens([i for i in batch.answers[row].tolist() if i >= 0])
        earlier = organism_tokenizer.convert_ids_to_tokens([i for i in batch.wrong[row].tolist() if i >= 0])
        assert later == [f"{y:02d}" for y in range(meta["yy"] + 1, 100)] and earlier == [f"{y:02d}" for y in
                                                                                         range(meta["yy"] + 1)]
    for row, meta in enumerate(batch.meta):  # the 01-corruption: the same sentence from year CC01
        corrupted = GreaterThanPrompt(meta["noun"], meta["century"], 1).prompt
        assert batch.corrupted[row].tolist() == organism_tokenizer(corrupted)["input_ids"]


def test_refusal_prompts_go_through_the_chat_template(organism_tokenizer, smollm2_tokenizer):
    pairs = Refusal().pairs(organism_tokenizer, 30)
    harmless_lengths = {len(act.split()) for _, act in Refusal().acts(False)}  # one word, one token
    unmatched = sum(len(pair.meta["act"].split()) not in harmless_lengths for pair in pairs)
    batch = Refusal().batch(organism_tokenizer, 30)
    assert unmatched > 0 and batch.report.dropped == {LENGTH_MISMATCH: unmatched} and len(batch) == 30 - unmatched
    meta = batch.meta[0]
    instruction = meta["phrasing"].format(act=meta["act"])
    n = int(batch.attention_mask[0].sum())
    assert batch.clean[0, :n].tolist() == organism_tokenizer(format_prompt(instruction))["input_ids"]
    assert organism_tokenizer.convert_ids_to_tokens(batch.answers[0].tolist()) == list(REFUSAL_OPENERS)
    smol = Refusal().batch(smollm2_tokenizer, 30)
    text = smollm2_tokenizer.decode(smol.clean[0, :int(smol.positions[0]) + 1])
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert smollm2_tokenizer.convert_ids_to_tokens(smol.answers[0].tolist()) == list(REFUSAL_OPENERS)


def test_factual_pairs_swap_the_subject_and_its_answer(smollm2_tokenizer):
    batch = FactualRecall().batch(smollm2_tokenizer, 50, "train")
    known = {(relation, subject): answer for relation, facts in RELATIONS.items() for subject, answer in facts}
    assert batch.report.kept > len(FactualRecall().facts("train")) // 2
    for row, meta in enumerate(batch.meta):
        n = int(batch.attention_mask[row].sum())
        clean, corrupted = (smollm2_tokenizer.decode(batch.tokens(c)[row, :n]) for c in (False, True))
        assert clean == meta["relation"].format(meta["subject"]) and corrupted == meta["relation"].format(meta["other"])
        assert smollm2_tokenizer.decode(batch.answers[row]) == f" {known[meta['relation'], meta['subject']]}"
        assert smollm2_tokenizer.decode(batch.wrong[row]) == f" {known[meta['relation'], meta['other']]}"


def test_induction_repeats_the_segment_and_the_corruption_repeats_another(smollm2_tokenizer):
    task = Induction(segment_length=12, repeat_length=5)
    batch = task.batch(smollm2_tokenizer, 16)
    assert batch.clean.shape == (16, 17) and batch.positions.tolist() == [16] * 16  # no BOS: 12 + 5 tokens
    for tokens, answers in ((batch.clean, batch.answers), (batch.corrupted, batch.wrong)):
        assert torch.equal(tokens[:, 12:], tokens[:, :5]) and torch.equal(answers[:, 0], tokens[:, 5])
    assert not set(batch.clean.flatten().tolist()) & set(smollm2_tokenizer.all_special_ids)


def test_unknown_tasks_settings_and_splits_are_named():
    with pytest.raises(TaskError, match="unknown task 'iio'; known tasks: ioi, induction"):
        make_task("iio")
    with pytest.raises(TaskError, match=r"task 'ioi' takes settings \['test_fraction', 'corruption', 'repair'\], "
                                        r"got \['corruptoin'\]"):
        make_task("ioi", corruptoin="abc")
    with pytest.raises(TaskError, match=r"IOI corruption must be one of \('abc', 's2_io'\), got 'bac'"):
        IOI(corruption="bac")
    with pytest.raises(TaskError, match="split must be 'train' or 'test', got 'dev'"):
        GreaterThan().prompts("dev")
    with pytest.raises(TaskError, match="takes settings"):
        make_task("jsonl")
    assert set(NAMES) >= set(IOI().usable_names(word_tokenizer(NAMES + ("to",))))
