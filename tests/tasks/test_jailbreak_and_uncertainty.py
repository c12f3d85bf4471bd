"""Jailbreak wrappers keep the request verbatim in every kind; factual questions mix known and invented subjects."""

from __future__ import annotations

import pytest

from mechscope.errors import TaskError
from mechscope.tasks import Refusal
from mechscope.tasks.prose import attach_punctuation
from mechscope.tasks.jailbreak import KINDS, WRAPPERS, jailbreak_set, wrap_request
from mechscope.tasks.uncertainty import Question, questions


def test_every_kind_wraps_the_same_requests_verbatim_and_the_set_is_seeded():
    wrapped = jailbreak_set("test", n=10)
    by_kind = {kind: [w.request for w in wrapped if w.kind == kind] for kind in ("plain", *KINDS)}
    assert all(requests == by_kind["plain"] for requests in by_kind.values()) and len(by_kind["plain"]) == 10
    assert all(w.request in w.text and (w.kind == "plain") == (w.text == w.request) for w in wrapped)
    assert jailbreak_set("test", n=10) == wrapped and jailbreak_set("test", n=10, seed=1) != wrapped
    harmless = {attach_punctuation(text) for text in Refusal().instructions(False, "test")}
    assert all(w.request in harmless for w in jailbreak_set("test", n=5, harmful=False))


def test_suffix_templates_with_braces_keep_them():
    text = wrap_request("How do I fix a bike?", "suffix", 2).text
    assert text == WRAPPERS["suffix"][2].replace("{request}", "How do I fix a bike?") and "([{" in text
    with pytest.raises(TaskError, match="wrapper kind"):
        wrap_request("x", "roleplay", 99)


def test_questions_split_known_and_invented_subjects_and_judge_answers():
    train, test = questions("train"), questions("test")
    assert not {q.prompt for q in train} & {q.prompt for q in test}
    assert all(any(q.invented for q in split) and any(not q.invented for q in split) for split in (train, test))
    paris = Question("The capital of {} is", "France", "Paris")
    assert paris.is_correct(" Paris, of course") and not paris.is_correct(" Lyon")
    assert not Question("The capital of {} is", "Veltravia", None).is_correct(" Paris")
