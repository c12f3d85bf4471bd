"""Monitors: per-token scores equal the hand-computed projection of cached activations, guards stop and cap
exactly where the threshold is crossed, and batching with left padding changes nothing."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import MechscopeError
from mechscope.models.generation import halt
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.steering.monitors import (LatentScore, Monitor, monitored_forward, monitored_generate, probe,
                                         projection)
from tests.conftest import tiny_hf

HOOK = "blocks.1.hook_resid_post"
IDS = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13], [0, 0, 0, 40, 41]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
PADDED = {"input_ids": IDS, "attention_mask": MASK}


@pytest.fixture(scope="module")
def model():
    return mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)


def _direction(d_model: int = 32) -> torch.Tensor:
    return torch.randn(d_model, generator=torch.Generator().manual_seed(7))


def _solo(row: int) -> torch.Tensor:
    return IDS[row][MASK[row].bool()]


def test_forward_scores_equal_the_projection_of_cached_activations(model):
    direction = _direction()
    _, record = monitored_forward(model, Monitor(HOOK, projection(direction)), PADDED)
    _, cache = model.run_with_cache(PADDED, HOOK)
    unit = direction / direction.norm()
    for row in range(3):
        expected = cache[HOOK][row][MASK[row].bool()] @ unit  # real tokens in text order
        torch.testing.assert_close(record.scores[row], expected)


def test_generation_scores_cover_prompt_and_new_tokens_and_match_a_rerun(model):
    weight = _direction()
    watched = monitored_generate(model, Monitor(HOOK, probe(weight, bias=0.5)), PADDED, max_new_tokens=4,
                                 eos_token_ids=())
    for row, new in enumerate(watched.generation.tokens):
        text = torch.cat([_solo(row), torch.tensor(new)])
        _, cache = model.run_with_cache(text[None], HOOK)
        expected = cache[HOOK][0] @ weight + 0.5
        scores = watched.record.scores[row]
        assert len(scores) == len(text) and scores[-1].isnan()  # the last new token was never fed back in
        torch.testing.assert_close(scores[:-1], expected[:-1], atol=1e-5, rtol=1e-5)


def test_batched_left_padded_scores_equal_each_row_alone(model):
    monitor = Monitor(HOOK, projection(_direction()))
    batched = monitored_generate(model, monitor, PADDED, max_new_tokens=3, eos_token_ids=())
    for row in range(3):
        alone = monitored_generate(model, monitor, _solo(row), max_new_tokens=3, eos_token_ids=())
        assert alone.generation.tokens[0] == batched.generation.tokens[row]
        torch.testing.assert_close(alone.record.scores[0], batched.record.scores[row], atol=1e-5, rtol=1e-5,
                                   equal_nan=True)


def test_stop_guard_ends_each_row_at_its_first_crossing_with_and_without_kv_cache(model):
    score = projection(_direction())
    free = monitored_generate(model, Monitor(HOOK, score), PADDED, max_new_tokens=8, eos_token_ids=())
    prompt = free.generation.prompt_lengths
    new_scores = [free.record.scores[row][prompt[row]:-1] for row in range(3)]  # new tokens that were fed back
    highest = sorted(float(s.max()) for s in new_scores)
    threshold = (highest[0] + highest[1]) / 2  # one row never reaches it, the others do
    for use_cache in (True, False):
        guard = Monitor(HOOK, score, threshold=threshold, guard="stop", watch="generated")
        guarded = monitored_generate(model, guard, PADDED, max_new_tokens=8, eos_token_ids=(), use_cache=use_cache)
        for row in range(3):
            over = (new_scores[row] >= threshold).nonzero()
            if len(over):
                first = int(over[0])
                assert guarded.generation.tokens[row] == free.generation.tokens[row][:first + 1]
                assert guarded.generation.finish_reasons[row] == "halted"
                assert guarded.record.alerts and any(a.row == row and a.position == prompt[row] + first
                                                     for a in guarded.record.alerts)
            else:
                assert guarded.generation.tokens[row] == free.generation.tokens[row]
    assert any(reason == "halted" for reason in guarded.generation.finish_reasons)
    assert any(reason == "length" for reason in guarded.generation.finish_reasons)


def test_a_prompt_crossing_the_threshold_gets_no_new_tokens(model):
    score = projection(_direction())
    _, record = monitored_forward(model, Monitor(HOOK, score), PADDED)
    peaks = [float(scores.max()) for scores in record.scores]
    threshold = max(peaks)  # only the row holding the highest prompt score reaches it
    guarded = monitored_generate(model, Monitor(HOOK, score, threshold, guard="stop"), PADDED, max_new_tokens=3,
                                 eos_token_ids=(), output_logits=True)
    top = peaks.index(threshold)
    assert guarded.generation.tokens[top] == [] and guarded.generation.finish_reasons[top] == "halted"
    assert guarded.generation.logits[top].shape == (0, 97)
    assert [len(t) for r, t in enumerate(guarded.generation.tokens) if r != top] == [3, 3]


def test_last_prompt_watch_alerts_at_each_rows_final_prompt_token_only(model):
    score = projection(_direction())
    _, record = monitored_forward(model, Monitor(HOOK, score, -1e9, watch="last_prompt"), PADDED)
    assert [(a.row, a.position) for a in record.alerts] == [(0, 4), (1, 2), (2, 1)]
    for use_cache in (True, False):
        guard = Monitor(HOOK, score, -1e9, guard="stop", watch="last_prompt")
        out = monitored_generate(model, guard, PADDED, max_new_tokens=3, eos_token_ids=(), use_cache=use_cache)
        assert out.generation.tokens == [[], [], []] and out.generation.finish_reasons == ["halted"] * 3
    free = monitored_generate(model, Monitor(HOOK, score, -1e9, guard="stop", watch="generated"), PADDED,
                              max_new_tokens=3, eos_token_ids=())
    assert all(len(tokens) == 1 for tokens in free.generation.tokens)  # the first new token crosses


def test_cap_guard_clips_the_projection_at_the_threshold_and_leaves_the_rest(model):
    direction = _direction()
    unit = direction / direction.norm()
    _, before = model.run_with_cache(PADDED, HOOK)
    threshold = float((before[HOOK] @ unit)[MASK.bool()].median())
    capped = {}
    with model.hooks([*Monitor(HOOK, projection(direction), threshold, guard="cap").hooks(),
                      (HOOK, lambda act, name: capped.setdefault("acts", act))]):
        model(PADDED)
    after = capped["acts"]
    real = MASK.bool()
    torch.testing.assert_close((after @ unit)[real], (before[HOOK] @ unit)[real].clamp(max=threshold))
    orthogonal = lambda acts: acts - (acts @ unit)[..., None] * unit  # noqa: E731
    torch.testing.assert_close(orthogonal(after)[real], orthogonal(before[HOOK])[real], atol=1e-5, rtol=1e-5)


def test_a_latent_monitor_reads_the_dictionarys_own_codes(model):
    dictionary = Dictionary(DictionaryConfig(32, 16, "relu"))
    dictionary.reset_parameters(seed=0)
    _, record = monitored_forward(model, Monitor(HOOK, LatentScore(dictionary, 5)), PADDED)
    _, cache = model.run_with_cache(PADDED, HOOK)
    codes = dictionary.encode(cache[HOOK])[..., 5]  # [batch, pos]
    assert (codes > 0).any()
    for row in range(3):
        torch.testing.assert_close(record.scores[row], codes[row][MASK[row].bool()].detach())
    with pytest.raises(MechscopeError, match="cap guard needs a projection"):
        Monitor(HOOK, LatentScore(dictionary, 5), 1.0, guard="cap")


def test_guards_without_a_threshold_and_halts_outside_generation_are_refused(model):
    with pytest.raises(MechscopeError, match="threshold"):
        Monitor(HOOK, projection(_direction()), guard="stop")
    with pytest.raises(MechscopeError, match="non-zero"):
        projection(torch.zeros(32))
    assert halt([0]) is False
