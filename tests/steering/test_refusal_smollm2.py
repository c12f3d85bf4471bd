"""The refusal direction of the safety-tuned SmolLM2 (slow; figures: benchmarks/refusal_direction_smollm2.py,
RESULTS.md). The paper's criteria keep no candidate here (every one that induces refusal moves harmless next tokens
by KL > 0.1), so the KL bound is lifted; the selected direction (layer 22, last token), added, makes held-out harmless
requests refused; ablated directionally it leaves a quarter of harmful requests refused, and the affine ablation at
its layer and the next scanned one (each along its own difference in means) removes refusal. The orthogonalised copy
computes the hooked ablation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import mechscope
from mechscope.models import chat_inputs
from mechscope.steering import (NoRefusalCandidate, RefusalConfig, refusal_effect, refusal_prompt_sets,
                                refusal_rates, save_orthogonalized, score_refusal_candidates, steer)

pytestmark = pytest.mark.slow
CONFIG = RefusalConfig(layers=(20, 22, 24))  # around the layer benchmarks/refusal_direction_smollm2.py selects


@pytest.fixture(scope="module")
def scored(refusal_smollm2):
    sets = refusal_prompt_sets(96, 16, task=refusal_smollm2.task)
    return score_refusal_candidates(refusal_smollm2.model, sets["harmful"], sets["harmless"], sets["harmful_val"],
                                    sets["harmless_val"], config=CONFIG)


@pytest.fixture(scope="module")
def direction(refusal_smollm2, scored):
    return scored.select(refusal_smollm2.model, RefusalConfig(layers=CONFIG.layers, kl_threshold=float("inf")))


def test_the_paper_criteria_keep_nothing_and_the_kl_free_selection_is_the_last_token_at_layer_22(
        refusal_smollm2, scored, direction):
    with pytest.raises(NoRefusalCandidate) as caught:
        scored.select(refusal_smollm2.model, CONFIG)
    assert len(caught.value.table) == 3 * len(scored.positions)
    assert (direction.layer, direction.position) == (22, -1)
    assert direction.table[-1]["dropped"] == "in the last 20% of layers"


def test_addition_causes_refusal_and_two_layer_affine_ablation_removes_it(refusal_smollm2, scored, direction):
    model, task = refusal_smollm2.model, refusal_smollm2.task
    harmful, harmless = task.instructions(True), task.instructions(False)[::2]
    effect = refusal_effect(model, direction, harmful, harmless)
    assert effect.plain.harmful_rate >= 0.9 and effect.plain.harmless_rate <= 0.1
    assert effect.added.harmless_rate >= 0.8
    assert effect.ablated.harmful_rate <= 0.3  # measured 25%: one direction does not hold all of it
    affine = refusal_rates(model, harmful, harmless, scored.affine_ablation([22, 24]))
    assert affine.harmful_rate <= 0.1 and affine.harmless_rate <= 0.1


def test_the_orthogonalised_copy_computes_the_hooked_ablation(refusal_smollm2, direction, tmp_path):
    model, task = refusal_smollm2.model, refusal_smollm2.task
    saved = save_orthogonalized(model, direction.vector.direction(direction.layer), tmp_path / "ortho")
    requests = task.instructions(True)[::4] + task.instructions(False)[::4]
    inputs = chat_inputs(model, requests)
    with steer(model, direction.ablate(model)), torch.no_grad():
        hooked = model(inputs)
    with torch.no_grad():
        baked = AutoModelForCausalLM.from_pretrained(saved).eval()(**inputs).logits
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(baked[real], hooked[real], atol=5e-4, rtol=1e-4)  # measured max gap 7.6e-5
    hooked_rates = refusal_rates(model, requests[:12], requests[12:], direction.ablate(model))
    edited_rates = refusal_rates(mechscope.load_model(saved, device="cpu"), requests[:12], requests[12:])
    assert edited_rates.harmful.replies == hooked_rates.harmful.replies
