"""The refusal direction on the `refusal` organism: ablated it stops refusals, added it causes them."""

from __future__ import annotations

import random

import pytest
import torch

from mechscope.errors import SteeringError
from mechscope.steering import RefusalConfig, select_refusal_direction, steer
from mechscope.steering.refusal import post_instruction_positions, refusal_score, refusal_token_ids

# The small organism has 2 layers, so the paper's last-20% rule would leave only layer 0, whose block input at the
# template's <assistant> token is the same embedding for every prompt. Its harmless activations sit at -1 along the
# direction and zero lies on the harmful side, so projecting the direction out makes it refuse everything; the affine
# ablation (projection set to the harmless mean) is what removes refusal here.
ORGANISM = RefusalConfig(prune_layer_fraction=0.0, ablation="affine")


def _split(task, harmful: bool, seed: int) -> tuple[list[str], list[str]]:
    train = task.instructions(harmful, "train")
    random.Random(seed).shuffle(train)
    return train[:128], train[128:160]  # Arditi et al.: 128 train and 32 validation instructions per side


@pytest.fixture(scope="module")
def organism_direction(small_organism):
    organism = small_organism("refusal")
    (harmful, harmful_val), (harmless, harmless_val) = _split(organism.task, True, 0), _split(organism.task, False, 1)
    return organism, select_refusal_direction(organism.model, harmful, harmless, harmful_val, harmless_val,
                                              config=ORGANISM)


def test_refusal_score_is_the_log_odds_of_the_refusal_tokens():
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.05, 0.05, 0.9]]))
    expected = torch.tensor([0.0, float(torch.log(torch.tensor(0.1 / 0.9, dtype=torch.float64)))],
                            dtype=torch.float64)
    torch.testing.assert_close(refusal_score(logits, [0, 1]), expected, atol=1e-6, rtol=0)


def test_the_organism_template_puts_one_token_after_the_instruction(small_organism):
    tokenizer = small_organism("refusal").model.tokenizer
    assert post_instruction_positions(tokenizer) == 1
    assert tokenizer.convert_ids_to_tokens(refusal_token_ids(tokenizer)) == ["I", "Sorry"]


def test_ablating_the_selected_direction_stops_refusals_and_adding_it_causes_them(organism_direction):
    organism, refusal = organism_direction
    before = organism.check()
    assert before.harmful_refusal_rate >= 0.9 and before.harmless_refusal_rate <= 0.1
    with steer(organism.model, refusal.ablate(organism.model)):
        ablated = organism.check()  # held-out acts, judged by the organism's own first-token check
    with steer(organism.model, refusal.add()):
        added = organism.check()
    assert ablated.harmful_refusal_rate <= 0.1
    assert added.harmless_refusal_rate >= 0.8


def test_the_whole_table_is_returned_and_the_winner_is_its_best_kept_row(organism_direction):
    _, refusal = organism_direction
    assert [(row["position"], row["layer"]) for row in refusal.table] == [(-1, 0), (-1, 1)]
    layer0, layer1 = refusal.table
    assert layer0["norm"] == 0 and layer0["dropped"] == "no contrast at this position and layer"
    assert layer1["dropped"] is None and refusal.layer == 1 and refusal.position == -1
    assert layer1["refusal_score"] < refusal.baseline["harmful_refusal_score"] - 5
    assert layer1["steering_score"] > 0 > refusal.baseline["harmless_refusal_score"]
    assert refusal.vector.metrics["selected"] == layer1


def test_the_paper_defaults_on_a_two_layer_model_drop_every_candidate_and_say_why(small_organism, organism_direction):
    organism = small_organism("refusal")
    prompts = organism.task.instructions(True, "train")[:8], organism.task.instructions(False, "train")[:8]
    with pytest.raises(SteeringError, match="every refusal candidate was dropped"):
        select_refusal_direction(organism.model, *prompts, *prompts)
