"""Head detectors, direct logit attribution and the logit lens: definitions and known answers."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.circuits import (activation_patching, detection_pattern, direct_logit_attribution, head_scores,
                                logit_lens)
from mechscope.errors import MechscopeError
from tests.conftest import tiny_hf, token_batch


def test_detection_patterns_follow_transformerlens():
    tokens = torch.tensor([[7, 3, 5, 3, 5]])
    previous = detection_pattern("previous_token", tokens)[0]
    assert torch.equal(previous.nonzero().tolist() and previous, torch.diag(torch.ones(4), -1))
    duplicate = detection_pattern("duplicate_token", tokens)[0]
    assert duplicate.nonzero().tolist() == [[3, 1], [4, 2]]            # the second 3 -> the first, same for 5
    induction = detection_pattern("induction", tokens)[0]
    assert induction.nonzero().tolist() == [[3, 2], [4, 3]]            # the token after each earlier copy


def test_head_scores_on_the_induction_organism_rank_its_heads_first(small_organism):
    organism = small_organism("induction")
    check = organism.check()
    tokens = organism.task.repeated_tokens(organism.model.tokenizer, 16)
    scores = head_scores(organism.model, tokens)
    induction, previous = scores["induction"].values, scores["previous_token"].values
    # the small organism grows several induction heads in layer 1; each is far above every layer-0 head
    assert int(induction.argmax()) // induction.shape[1] == check.induction_layer
    assert induction[check.induction_layer, check.best_head] > 0.9 * induction.max()
    assert induction[check.induction_layer, check.best_head] > 10 * induction[0].max()
    assert int(previous.argmax()) // previous.shape[1] == 0           # the previous-token head sits in layer 0
    assert previous.max() > 0.5 and previous[0].max() > 5 * previous[1].max()


def test_patching_the_induction_head_from_a_corrupted_run_destroys_induction(small_organism):
    organism = small_organism("induction")
    tokens = organism.task.repeated_tokens(organism.model.tokenizer, 16, seed=0)
    corrupted = organism.task.repeated_tokens(organism.model.tokenizer, 16, seed=1)
    half = (tokens.shape[1] - 1) // 2
    corrupted = torch.cat([tokens[:, : half + 1], corrupted[:, half + 1:]], 1)  # same first copy, new second

    def metric(logits):  # log-prob of the correct repeated token over the second copy
        log_probs = logits[:, half + 1:-1].log_softmax(-1)
        return log_probs.gather(-1, tokens[:, half + 2:, None])[..., 0].mean(1)

    def destroyed(component):  # share of the metric lost by patching each site from the corrupted run
        result = activation_patching(organism.model, tokens, corrupted, metric, component, noising=True)
        return (result.clean - result.values) / (result.clean - result.corrupted)
    layers, heads = destroyed("attn"), destroyed("heads")
    check = organism.check()
    assert layers[check.induction_layer] > 0.9 and layers[0] < 0.3
    # the small organism spreads induction over several heads: those the detector ranks highest matter most
    detected = head_scores(organism.model, tokens)["induction"].values
    top = 2
    assert set(heads.reshape(-1).topk(top).indices.tolist()) == set(detected.reshape(-1).topk(top).indices.tolist())


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "gemma2", "qwen3", "olmo2", "phi3"])
def test_dla_contributions_sum_to_the_logit_difference(family):
    model = mechscope.load_model(tiny_hf(family), device="cpu")
    tokens = token_batch(batch=3, pos=7)
    answer, wrong = torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10])
    result = direct_logit_attribution(model, tokens, answer, wrong)
    logits = model(tokens)[:, -1]
    total = (logits[torch.arange(3), answer] - logits[torch.arange(3), wrong]).mean()
    assert result.info["max_sum_error"] < 1e-4
    torch.testing.assert_close(result.values.sum(), total, atol=1e-4, rtol=1e-4)
    every = direct_logit_attribution(model, tokens, answer, wrong, positions="all")
    assert every.axes == ("component", "pos") and every.info["max_sum_error"] < 1e-4
    labels = result.labels["component"]
    bias = torch.tensor([v for label, v in zip(labels, result.values) if label.endswith("attn bias")])
    assert len(labels) == 2 + model.n_layers * (model.info.n_heads + 2) and result.info["per_head"]
    if family != "gpt2":  # the other families have no attention output bias: heads account for everything
        assert bias.abs().max() < 1e-4


def test_logit_lens_last_layer_equals_the_model_output():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu")
    tokens = token_batch(batch=2, pos=5)
    lens, tops = logit_lens(model, tokens)
    final = model(tokens)[:, -1].log_softmax(-1).max(-1).values.mean()
    torch.testing.assert_close(lens.values[-1], final, atol=1e-5, rtol=1e-5)
    assert len(tops) == model.n_layers and len(tops[0]) == 5


def test_logit_attribution_refuses_encoders(minilm):
    with pytest.raises(MechscopeError, match="pre-norm"):
        direct_logit_attribution(minilm, ["a test"], torch.tensor([5]))


def test_results_save_and_load_round_trip(tmp_path):
    model = mechscope.load_model(tiny_hf("llama"), device="cpu")
    result = head_scores(model, token_batch(batch=2, pos=9))["induction"]
    files = result.save(tmp_path / "heads")
    loaded = type(result).load(tmp_path / "heads")
    assert torch.equal(loaded.values, result.values) and loaded.labels == result.labels
    page = open(files["html"]).read()
    assert "http" not in page.split("<script>")[1]  # self-contained: no CDN


def test_attention_view_holds_every_heads_pattern_offline(tmp_path):
    import json

    from mechscope.circuits import write_pattern_view

    model = mechscope.load_model(tiny_hf("llama"), device="cpu")
    page = write_pattern_view(model, torch.tensor([[3, 9, 4, 9]]), tmp_path).read_text()
    data = json.loads(page.split("const data = ")[1].split(";\n")[0])
    _, cache = model.run_with_cache(torch.tensor([[3, 9, 4, 9]]), ["blocks.2.attn.hook_pattern"])
    torch.testing.assert_close(torch.tensor(data["patterns"][2]), cache["blocks.2.attn.hook_pattern"][0], atol=1e-4,
                               rtol=0)
    assert data["tokens"] == ["#3", "#9", "#4", "#9"] and "http" not in page
