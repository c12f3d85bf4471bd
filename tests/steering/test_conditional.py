"""Conditional steering on the refusal organism: a threshold found by grid search gates the refusal vector."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import SteeringError
from mechscope.steering import Condition, Direction, Intervention, contrast, search_threshold, steer
from mechscope.steering.conditional import condition_scores

HOOK = "blocks.1.hook_resid_pre"


def test_a_searched_threshold_on_the_refusal_direction_gates_refusal_to_harmful_prompts(small_organism):
    organism = small_organism("refusal")
    model, task = organism.model, organism.task
    harmful, harmless = task.instructions(True, "train"), task.instructions(False, "train")
    target = Direction(contrast(model, harmful[:128], harmless[:128], layers=[1]).diff_in_means()[0, 0].float())
    search = search_threshold(model, HOOK, target, harmful[128:192], harmless[128:192], per="token")
    assert search.f1 == 1.0 and search.above
    held_out = condition_scores(model, HOOK, target, task.instructions(False, "test"), per="token")
    assert (held_out < search.threshold).float().mean() >= 0.95  # the middle of the best run leaves a margin
    # an "always refuse" edit, gated by the condition: held-out harmless requests stay answered
    with steer(model, Intervention(HOOK, target, "add", 3.0, condition=search.condition(HOOK, target))):
        gated = organism.check()
    with steer(model, Intervention(HOOK, target, "add", 3.0)):
        ungated = organism.check()
    assert ungated.harmless_refusal_rate >= 0.8
    assert gated.harmless_refusal_rate <= 0.05 and gated.harmful_refusal_rate >= 0.95
    last = Condition(HOOK, target, search.threshold, search.above, per="last")  # decided once, at the last token
    with steer(model, Intervention(HOOK, target, "add", 3.0, condition=last)):
        assert organism.check() == gated


def test_a_condition_is_decided_per_prompt_last_token_or_token_only():
    with pytest.raises(SteeringError, match="per one of prompt, last, token"):
        Condition(HOOK, Direction(torch.ones(4)), 0.0, per="row")
