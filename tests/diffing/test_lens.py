"""Activation-difference lens and per-token KL on models whose difference is known exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from mechscope.diffing.lens import activation_difference, token_kl, vocabulary_projection
from mechscope.models import wrap
from mechscope.models.unembedding import unembedding
from mechscope.toy.word_tokenizer import word_tokenizer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
TEXTS = [" ".join(WORDS[(i * 5 + j * 3) % len(WORDS)] for j in range(9)) for i in range(12)]


@pytest.fixture(scope="module")
def model_a():
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer(WORDS)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                      max_position_embeddings=32, tie_word_embeddings=False,
                                      bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id))
    return wrap(hf.eval(), tokenizer, name="A", check=False)


def _variant(model, name: str, edit) -> object:
    hf = copy.deepcopy(model.hf)
    with torch.no_grad():
        edit(hf)
    return wrap(hf, model.tokenizer, name=name, check=False)


def test_lens_reads_a_planted_embedding_shift_as_its_token(model_a):
    target = model_a.tokenizer.convert_tokens_to_ids("theta")
    w_u, scale, _ = unembedding(model_a)
    shift = (w_u[target] / scale).detach().clone()  # read through the unembedding, this is token theta's logit row
    model_b = _variant(model_a, "B", lambda hf: hf.model.embed_tokens.weight.add_(shift))
    difference = activation_difference(model_a, model_b, TEXTS, "blocks.0.hook_resid_pre", first_tokens=4)
    torch.testing.assert_close(difference, shift, rtol=1e-4, atol=1e-5)
    projection = vocabulary_projection(model_b, difference, top=3)
    assert projection["promoted"][0][0] == "theta"
    same = activation_difference(model_a, model_a, TEXTS, "blocks.1.hook_resid_post")
    assert float(same.abs().max()) == 0.0


def test_token_kl_is_zero_for_a_model_with_itself_and_matches_a_direct_computation(model_a):
    assert token_kl(model_a, model_a, TEXTS).mean == 0.0
    sharper = _variant(model_a, "B", lambda hf: hf.lm_head.weight.mul_(3.0))
    result = token_kl(model_a, sharper, TEXTS)
    assert result.mean > 0.01
    assert all(torch.equal(a, b) for a, b in zip(result.top_a, result.top_b))  # a sharper softmax keeps each argmax
    batch = model_a.encode(TEXTS[:1])
    log_a, log_b = model_a(batch)[0].log_softmax(-1), sharper(batch)[0].log_softmax(-1)
    direct = torch.nn.functional.kl_div(log_a, log_b, log_target=True, reduction="none").sum(-1)[1:]  # skip <bos>
    torch.testing.assert_close(result.kl[0], direct.detach(), rtol=1e-4, atol=1e-6)
    top = result.top_contexts(sharper, n=3)
    assert top[0]["kl"] == round(float(torch.cat(result.kl).max()), 4) and top[0]["next_a"] == top[0]["next_b"]
