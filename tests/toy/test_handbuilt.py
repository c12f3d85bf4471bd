"""The hand-built induction transformer: it does induction, loads as an HF directory, and its detectors agree."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits import head_scores
from mechscope.errors import MechscopeError
from mechscope.tasks import make_task
from mechscope.toy.handbuilt import (HandBuiltConfig, handbuilt_circuit, handbuilt_model, open_handbuilt,
                                     repeat_accuracy, save_handbuilt)
from mechscope.toy.induction_circuit import induction_circuit


@pytest.fixture(scope="module")
def handbuilt():
    return handbuilt_model()


def distinct_repeats(batch: int = 16, length: int = 20, seed: int = 0) -> torch.Tensor:
    """<bos> (id 2), `length` distinct ordinary tokens (ids 4..43), the same again."""
    g = torch.Generator().manual_seed(seed)
    segment = torch.stack([torch.randperm(40, generator=g)[:length] + 4 for _ in range(batch)])
    return torch.cat([torch.full((batch, 1), 2), segment, segment], 1)


def test_predicts_every_token_of_the_second_repeat(handbuilt):
    assert repeat_accuracy(handbuilt, distinct_repeats()) >= 0.95
    batch = make_task("induction").batch(handbuilt.tokenizer, 32)
    predicted = batch.logits(handbuilt).argmax(-1).cpu()
    assert (predicted == batch.answers[:, 0]).float().mean() >= 0.95


def test_detectors_find_the_planted_heads_and_no_others(handbuilt):
    scores = head_scores(handbuilt, distinct_repeats())
    previous, induction = scores["previous_token"].values, scores["induction"].values
    others = previous.clone()
    others[0, 1] = 0
    assert previous[0, 1] > 0.95 and others.max() < 0.1
    assert induction[1, 2] > 0.45 and induction.flatten().topk(2).values[1] < 0.05  # the first copy cannot be predicted


def test_detector_circuit_equals_the_constructed_one(handbuilt):
    cfg = HandBuiltConfig()
    assert induction_circuit(handbuilt, distinct_repeats()) == {"a0.h1->a1.h2<k>", "a1.h2->logits"}
    assert induction_circuit(handbuilt, distinct_repeats(), with_inputs=True) == handbuilt_circuit(cfg)
    assert handbuilt_circuit(cfg, positional=True) - handbuilt_circuit(cfg) == {"input->a0.h1<q>", "input->a0.h1<k>"}


def test_saved_directory_loads_with_identical_logits(handbuilt, tmp_path):
    cfg = HandBuiltConfig()
    model, loaded_cfg = open_handbuilt(save_handbuilt(tmp_path / "hb", cfg))
    tokens = distinct_repeats(4)
    assert loaded_cfg == cfg and model.family.name == "gpt2"
    assert torch.equal(model(tokens), handbuilt(tokens))
    with pytest.raises(MechscopeError, match="no hand-built model"):
        open_handbuilt(tmp_path)


def test_heads_move_the_circuit_somewhere_else():
    cfg = HandBuiltConfig(previous_token_head=3, induction_head=0)
    model = handbuilt_model(cfg)
    assert repeat_accuracy(model, distinct_repeats()) >= 0.95
    assert induction_circuit(model, distinct_repeats(), with_inputs=True) == handbuilt_circuit(cfg)
    with pytest.raises(MechscopeError, match="induction_head must be in 0..3"):
        HandBuiltConfig(induction_head=4)


def test_organism_circuit_composes_layer_0_into_layer_1(small_organism):
    edges = induction_circuit(small_organism("induction").model)
    composition = [e for e in edges if e.endswith("<k>")]
    assert composition and all(e.startswith("a0.") and "->a1." in e for e in composition)
    writers = {e.removesuffix("->logits") for e in edges if e.endswith("->logits")}
    assert writers == {e.split("->")[1].removesuffix("<k>") for e in composition}
