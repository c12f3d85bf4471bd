"""Side by side with TransformerLens's TransformerBridge, where it is installed (never a mechscope dependency):
every hook name both libraries have holds the same tensor on tiny models of the families both support."""

from __future__ import annotations

import pytest
import torch

import mechscope
from tests.conftest import tiny_hf, token_batch, word_tokenizer

tl_bridge = pytest.importorskip("transformer_lens.model_bridge")


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "gpt_neox_sequential", "llama", "qwen3", "phi3", "mixtral",
                                    "gemma2", "gemma3", "olmo2"])
def test_shared_hook_names_hold_the_same_tensors_as_transformer_lens(family, tmp_path):
    from transformers import AutoTokenizer

    word_tokenizer([f"w{i}" for i in range(90)]).save_pretrained(tmp_path)
    ours = mechscope.load_model(tiny_hf(family), device="cpu")
    theirs_hf = tiny_hf(family)
    theirs_hf.config._name_or_path = f"tiny-{family}"
    theirs_hf.config.architectures = [type(theirs_hf).__name__]
    bridge = tl_bridge.TransformerBridge.boot_transformers(
        f"tiny-{family}", hf_model=theirs_hf, tokenizer=AutoTokenizer.from_pretrained(tmp_path), device="cpu")
    bridge.set_use_attn_result(True)
    bridge.set_use_split_qkv_input(True)
    bridge.set_use_hook_mlp_in(True)
    tokens = token_batch()
    _, mine = ours.run_with_cache(tokens, ours.hook_names())
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens)
    shared = [name for name in mine if name in cache]
    # TransformerLens's hook_attn_in is per head, and it has no router-logits hook
    assert all(name.endswith(("hook_attn_in", "hook_router_logits")) for name in set(mine) - set(shared))
    for name in shared:
        torch.testing.assert_close(mine[name], cache[name], rtol=1e-4, atol=1e-4, msg=name)
