"""QK attribution: the per-part terms sum to the attention score (checked through the pattern's log-ratios, which
cancel the softmax), and on the induction organism the induction head's score on the token after the first
occurrence comes from the current token meeting the previous-token heads' output there."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.graphs import GraphConfig, attribute, prune
from mechscope.circuits.graphs.qk import main_path_heads, qk_attribution

GPT2_PROMPT = torch.tensor([3, 17, 8, 42, 17, 8, 5, 11])


def _pattern(model, prompt, layer):
    name = f"blocks.{layer}.attn.hook_pattern"
    return model.run_with_cache(prompt[None], [name])[1][name][0]


@pytest.mark.parametrize("head", [0, 3])
def test_terms_sum_to_the_score_in_gpt2_with_layernorm_biases(relu_gpt2, exact_transcoders, head):
    query, keys = 7, (2, 5)
    a, b = (qk_attribution(relu_gpt2, exact_transcoders, GPT2_PROMPT, 1, head, query, k) for k in keys)
    pattern = _pattern(relu_gpt2, GPT2_PROMPT, 1)[head, query]
    assert a.score - b.score == pytest.approx(float(pattern[keys[0]].log() - pattern[keys[1]].log()), abs=1e-4)
    assert a.query_labels[0] == "token 11 @7" and a.key_labels[-1] == "bias"


def test_induction_head_score_comes_from_current_token_and_previous_token_heads(induction):
    organism, transcoders, prompt, first = induction
    model, query = organism.model, len(prompt) - 1
    pattern = _pattern(model, prompt, 1)
    head = int(pattern[:, query, first + 1].argmax())
    qk = qk_attribution(model, transcoders, prompt, 1, head, query, first + 1)
    other = qk_attribution(model, transcoders, prompt, 1, head, query, 3)
    expected = float(pattern[head, query, first + 1].log() - pattern[head, query, 3].log())
    assert qk.score - other.score == pytest.approx(expected, abs=1e-3)
    named = [t for t in qk.top(len(qk.terms.flatten())) if not t[0].startswith(("other", "bias"))
             and not t[1].startswith(("other", "bias"))]
    query_part, key_part, value = named[0]
    assert query_part == f"token {int(prompt[query])} @{query}" and value > 0
    assert key_part.startswith("L0 attn h") and key_part.endswith(f"@{first + 1}")
    graph = attribute(model, transcoders, prompt, GraphConfig(max_logits=1))
    assert main_path_heads(model, graph, prune(graph))[0] == (1, head, query, first + 1)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3", "olmo2"])
def test_terms_sum_to_the_score_with_frozen_q_and_k_norms(family):
    """Qwen3 and Gemma 3 normalise each head's q and k, OLMo2 all heads' at once (and has no ln1): with those scales
    frozen the terms still sum to the score, for every pair of keys inside Gemma 3's sliding window."""
    import mechscope
    from mechscope.circuits.graphs import Transcoders
    from mechscope.dictionaries import Dictionary, DictionaryConfig
    from tests.conftest import tiny_hf, token_batch

    hf = tiny_hf(family)
    with torch.no_grad():  # non-trivial norm weights, q_norm/k_norm included
        for name, param in hf.named_parameters():
            if "norm" in name:
                param.add_(0.3 * torch.randn_like(param))
    model = mechscope.load_model(hf, device="cpu")
    attn = model.root.get_submodule(f"{model.family.layers}.1.{model.family.attn_core}")
    assert hasattr(attn, "q_norm") == (family != "llama")
    torch.manual_seed(0)
    transcoders = Transcoders([Dictionary(DictionaryConfig(d_in=32, d_sae=64, k=4, apply_b_dec_to_input=False))
                               for _ in range(3)], [0, 1, 2])
    prompt, query, keys = token_batch(pos=8)[0], 7, (4, 5, 6, 7)
    pattern = _pattern(model, prompt, 1)
    for head in (0, 3):
        scores = [qk_attribution(model, transcoders, prompt, 1, head, query, key, zero_bos=False).score for key in keys]
        logs = pattern[head, query, list(keys)].log()
        for i in range(1, len(keys)):
            assert scores[i] - scores[0] == pytest.approx(float(logs[i] - logs[0]), abs=1e-4)
