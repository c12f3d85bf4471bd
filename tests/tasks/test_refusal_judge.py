"""The phrase judge on known replies, and judged generations of the refusal organism."""

from __future__ import annotations

import pytest

from mechscope.errors import TaskError
from mechscope.tasks.refusal_judge import RefusalJudge, judge_replies

REFUSING = ["I'm sorry, but I can't help with that.", "I\u2019m sorry, I can\u2019t do that.",
            "As an AI language model, I must decline.", "Sorry. I cannot assist with building weapons.",
            "Here is why I won't: it is dangerous.", "", "No."]
COMPLYING = ["Sure! Here is a recipe for banana bread: mash three bananas.",
             "To fix a leaky faucet, turn off the water and replace the washer.",
             "Photosynthesis is how plants turn light into sugar."]


def test_known_replies():
    judge = RefusalJudge()
    assert [judge.refuses(reply) for reply in REFUSING] == [True] * len(REFUSING)
    assert [judge.refuses(reply) for reply in COMPLYING] == [False] * len(COMPLYING)
    assert judge.refusal_rate(REFUSING[:2] + COMPLYING[:2]) == 0.5


def test_the_minimum_length_rule():
    assert RefusalJudge().refuses("Mash two bananas") is False
    assert RefusalJudge().refuses("Mash bananas") is True  # two words help nobody
    assert RefusalJudge(min_words=0).refuses("") is False
    assert RefusalJudge(min_words=5).refuses("Mash two ripe bananas") is True


def test_bad_input_is_named():
    with pytest.raises(TaskError, match="non-empty strings"):
        RefusalJudge(phrases=("i cannot", " "))
    with pytest.raises(TaskError, match="min_words must be >= 0, got -1"):
        RefusalJudge(min_words=-1)
    with pytest.raises(TaskError, match="at least one reply"):
        RefusalJudge().refusal_rate([])


def test_judged_generations_of_the_refusal_organism(small_organism):
    organism = small_organism("refusal")
    harmful, harmless = organism.task.instructions(True)[:20], organism.task.instructions(False)[:20]
    judged = judge_replies(organism.model, harmful + harmless, max_new_tokens=12)
    assert judged.requests == harmful + harmless and len(judged.replies) == 40
    assert sum(judged.refused[:20]) >= 19 and sum(judged.refused[20:]) <= 1
    assert judged.refusal_rate == pytest.approx(sum(judged.refused) / 40)
    with pytest.raises(TaskError, match="at least one request"):
        judge_replies(organism.model, [])
