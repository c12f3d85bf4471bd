"""Known answers on the trained organisms (small sizes, from the zoo cache): each task's metric separates clean
from corrupted runs the way the organism's mechanism says it must."""

from __future__ import annotations

import pytest

import mechscope
from mechscope.tasks import (IOI, Induction, Refusal, clean_and_corrupted, kl_to_clean, logit_diff,
                             normalized_logit_diff)


@pytest.fixture(scope="module")
def organism():
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = mechscope.load_organism(name, size="small", device="cpu")
        return loaded[name]

    return get


def test_ioi_logit_diff_is_large_clean_and_gone_when_corrupted(organism):
    ioi = organism("ioi")
    baseline = IOI().batch(ioi.model.tokenizer, 200, seed=0)
    clean, corrupted = clean_and_corrupted(ioi.model, baseline)
    clean_diff, corrupted_diff = logit_diff(clean, baseline).mean(), logit_diff(corrupted, baseline).mean()
    assert clean_diff > 2 and abs(corrupted_diff) < 0.2 * clean_diff  # ABC names carry no answer
    fresh = IOI().batch(ioi.model.tokenizer, 200, seed=1)  # other sentences, scored against the seed-0 baselines
    fresh_clean, fresh_corrupted = clean_and_corrupted(ioi.model, fresh)
    scale = clean_diff - corrupted_diff
    assert float(((logit_diff(fresh_clean, fresh) - corrupted_diff) / scale).mean()) == pytest.approx(1.0, abs=0.1)
    assert float(((logit_diff(fresh_corrupted, fresh) - corrupted_diff) / scale).mean()) == pytest.approx(0.0, abs=0.2)
    assert normalized_logit_diff(fresh_clean, fresh, fresh_clean, fresh_corrupted).mean() == pytest.approx(1.0)
    assert kl_to_clean(fresh_clean, fresh, fresh_clean).abs().max() < 1e-5
    assert kl_to_clean(fresh_corrupted, fresh, fresh_clean).mean() > 1


def test_ioi_s2_to_io_corruption_flips_the_answer_to_the_subject(organism):
    ioi = organism("ioi")
    batch = IOI(corruption="s2_io").batch(ioi.model.tokenizer, 100)
    clean, corrupted = clean_and_corrupted(ioi.model, batch)
    assert logit_diff(clean, batch).mean() > 2 and logit_diff(corrupted, batch).mean() < -2


def test_induction_copies_the_token_after_the_earlier_occurrence(organism):
    induction = organism("induction")
    batch = Induction(segment_length=20, repeat_length=8).batch(induction.model.tokenizer, 64)
    assert batch.clean[0, 0] == induction.model.tokenizer.bos_token_id
    clean, corrupted = clean_and_corrupted(induction.model, batch)
    assert logit_diff(clean, batch).mean() > 2 and logit_diff(corrupted, batch).mean() < -2


def test_refusal_opens_with_a_refusal_only_for_the_harmful_side(organism):
    refusal = organism("refusal")
    batch = Refusal().batch(refusal.model.tokenizer, 64)
    clean, corrupted = clean_and_corrupted(refusal.model, batch)
    assert (logit_diff(clean, batch) > 0).float().mean() > 0.9 and (logit_diff(corrupted, batch) < 0).float().mean() > 0.9
