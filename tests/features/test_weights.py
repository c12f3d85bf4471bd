"""Logit weights equal W_dec diag(gamma) W_U^T computed by hand per norm type; decoder neighbours equal brute force."""

from __future__ import annotations

import pytest
import torch

import mechscope
import mechscope.features.weights as weights
from mechscope.features import Catalog
from mechscope.features.examples import vocabulary
from mechscope.features.weights import decoder_neighbours, logit_weights
from mechscope.models.unembedding import norm_scale
from tests.conftest import tiny_hf


@pytest.mark.parametrize("family,norm,gamma", [
    ("gpt2", "transformer.ln_f", lambda w: w),  # LayerNorm (with a bias)
    ("llama", "model.norm", lambda w: w),  # RMSNorm
    ("gemma2", "model.norm", lambda w: 1 + w),  # Gemma's RMSNorm scales by 1 + weight
])
def test_logit_weights_fold_the_final_norm_scale(family, norm, gamma):
    hf = tiny_hf(family)
    module = hf.get_submodule(norm)
    with torch.no_grad():
        module.weight.copy_(torch.randn_like(module.weight))
        if getattr(module, "bias", None) is not None:
            module.bias.copy_(torch.randn_like(module.bias))
    model = mechscope.load_model(hf, device="cpu", check=False)
    W_dec = torch.randn(40, 32)
    direct = (W_dec * gamma(module.weight.detach())) @ hf.get_output_embeddings().weight.detach().T
    got = logit_weights(model, W_dec, "blocks.1.hook_resid_post", top=5)
    expected = direct.topk(5, dim=1)
    assert torch.equal(torch.from_numpy(got["top_ids"]), expected.indices)
    torch.testing.assert_close(torch.from_numpy(got["top_values"]), expected.values, rtol=1e-4, atol=1e-5)
    low = direct.topk(5, dim=1, largest=False)
    assert torch.equal(torch.from_numpy(got["bottom_ids"]), low.indices)
    assert "final norm" in got["method"]


def test_norm_scale_of_odd_widths_and_plain_layernorm():
    norm = torch.nn.LayerNorm(7)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 8.0))
    torch.testing.assert_close(norm_scale(norm, 7), torch.arange(1.0, 8.0), rtol=1e-4, atol=1e-5)


def test_encoders_use_the_token_embedding_and_other_hooks_get_none():
    model = mechscope.load_model(tiny_hf("bert"), device="cpu", check=False)
    W_dec = torch.randn(10, 32)
    got = logit_weights(model, W_dec, "blocks.0.hook_resid_post", top=3)
    embed = model.hf.get_input_embeddings().weight.detach()
    assert torch.equal(torch.from_numpy(got["top_ids"]), (W_dec @ embed.T).topk(3, dim=1).indices)
    assert got["method"].startswith("token embedding")
    assert "top_ids" not in logit_weights(model, W_dec, "blocks.0.mlp.hook_post", top=3)


@pytest.mark.parametrize("block_elements", [2**25, 100])  # one block, and many small ones
def test_decoder_neighbours_equal_brute_force(block_elements, monkeypatch):
    monkeypatch.setattr(weights, "BLOCK_ELEMENTS", block_elements)
    W_dec = torch.randn(300, 16)
    ids, cos = decoder_neighbours(W_dec, 7)
    unit = W_dec / W_dec.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(float("-inf"))
    expected = sims.topk(7, dim=1)
    assert torch.equal(ids, expected.indices)
    torch.testing.assert_close(cos, expected.values)


def test_catalogue_holds_the_same_neighbours_and_logits(mined, sae, lm):
    catalog = Catalog(mined[0])
    ids, cos = decoder_neighbours(sae.W_dec, 5)
    info = catalog.get(4)
    assert [j for j, _ in info.decoder_neighbours] == ids[4].tolist() and info.decoder_neighbours[0][0] == 5
    logits = logit_weights(lm, sae.W_dec, sae.cfg.hook_name, 4)
    assert [v for _, v in info.top_logits] == [round(float(v), 4) for v in logits["top_values"][4]]
    strings = vocabulary(lm.tokenizer, 97)
    assert [t for t, _ in info.top_logits] == [strings[i] for i in logits["top_ids"][4]]
