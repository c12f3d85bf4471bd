"""SmolLM2-135M-Instruct (a dequantised Q4_1 GGUF): hooks equal HF exactly, head ablation, induction, CLI."""

from __future__ import annotations

import json

import torch

from mechscope.cli import main


def test_smollm2_hooks_match_hf_hidden_states_exactly(smollm2):
    batch = smollm2.encode(["Sparse autoencoders are dictionaries.", "Fellow citizens"])
    names = [f"blocks.{l}.hook_resid_post" for l in range(29)] + ["ln_final.hook_out"]
    _, cache = smollm2.run_with_cache(batch, names=names)
    with torch.no_grad():
        hidden = smollm2.hf(**batch, output_hidden_states=True).hidden_states
    assert len(hidden) == 31
    for layer in range(29):
        assert torch.equal(cache[names[layer]], hidden[layer + 1])
    assert torch.equal(cache["ln_final.hook_out"], hidden[30])  # HF's last entry is after the final norm


def test_hook_z_head_ablation_equals_zeroing_that_heads_o_proj_columns(smollm2):
    layer, head, d_head = 7, 4, smollm2.info.d_head
    ids = smollm2.to_tokens(["The cat sat on the mat because it was tired."])

    def ablate(z, _name):
        z = z.clone()
        z[:, :, head] = 0
        return z

    with torch.no_grad():
        clean = smollm2(ids)
        with smollm2.hooks({f"blocks.{layer}.attn.hook_z": ablate}):
            hooked = smollm2(ids)
        weight = smollm2.hf.model.layers[layer].self_attn.o_proj.weight
        saved = weight.clone()
        try:
            weight[:, head * d_head:(head + 1) * d_head] = 0
            edited = smollm2(ids)
        finally:
            weight.copy_(saved)
    assert torch.equal(hooked, edited)
    assert (hooked - clean).abs().max() > 0.1  # the head matters, so the identity is not vacuous


def test_smollm2_has_an_induction_head_far_above_the_median_head(smollm2):
    """TransformerLens's induction score: attention from each second-copy token to the token after its first copy."""
    half = 50
    generator = torch.Generator().manual_seed(0)
    random = torch.randint(1000, 20000, (4, half), generator=generator)
    bos = torch.full((4, 1), smollm2.tokenizer.bos_token_id)
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(smollm2.n_layers)]
    _, cache = smollm2.run_with_cache(torch.cat([bos, random, random], 1), names=names)
    query = torch.arange(half + 1, 2 * half + 1)
    key = query - half + 1  # the token after the same token's first occurrence
    scores = torch.stack([cache[name][:, :, query, key].mean((0, 2)) for name in names])  # [layer, head]
    assert scores.max() > 0.8
    assert scores.max() > 50 * scores.median()


def test_describe_records_the_gguf_quantisation_and_hash(smollm2):
    from mechscope.models.gguf import SMOLLM2_SHA256

    described = smollm2.describe()
    assert described["quantization"] == "Q4_1 GGUF, dequantised to float32"
    assert described["revision"] == SMOLLM2_SHA256
    assert (described["n_layers"], described["d_model"], described["n_heads"], described["n_kv_heads"],
            described["d_vocab"]) == (30, 576, 9, 3, 49152)


def test_cli_models_inspect_smollm2_json(smollm2, capsys):
    assert main(["models", "inspect", "smollm2", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["name"], result["n_layers"], result["n_kv_heads"]) == ("smollm2", 30, 3)
    assert result["hooks"]["blocks.0.attn.hook_z"] == ["batch", "pos", 9, 64]
