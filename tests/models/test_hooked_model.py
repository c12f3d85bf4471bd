"""HookedModel over every supported family: exact parity with HF, hook semantics, bad input."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import HookNameError, HookShapeError, MechscopeError, UnsupportedModelError
from mechscope.models.hook_points import COMPUTED
from tests.conftest import tiny_hf, token_batch


def _hf_hidden(hf, tokens, **kwargs):
    with torch.no_grad():
        return hf(input_ids=tokens, output_hidden_states=True, use_cache=False, **kwargs)


@pytest.mark.parametrize("with_patterns", [False, True])
def test_resid_post_equals_hf_hidden_states(family_model, with_patterns):
    _, hf, model = family_model
    tokens = token_batch()
    names = [n for n in model.hook_names() if with_patterns or not n.endswith("hook_pattern")]
    out, cache = model.run_with_cache(tokens, names=names)
    attn = hf.config._attn_implementation
    if with_patterns:  # pattern hooks run HF's own eager attention; compare with HF in eager mode
        hf.set_attn_implementation("eager")
    hidden = _hf_hidden(hf, tokens).hidden_states
    hf.set_attn_implementation(attn)
    assert len(hidden) == model.n_layers + 1
    assert torch.equal(cache["blocks.0.hook_resid_pre"], hidden[0])
    for layer in range(model.n_layers - 1):
        assert torch.equal(cache[f"blocks.{layer}.hook_resid_post"], hidden[layer + 1]), layer
    last = cache[f"blocks.{model.n_layers - 1}.hook_resid_post"]
    final = cache.get("ln_final.hook_out")
    # HF reports the last hidden state after the final norm for some families, before it for others
    assert torch.equal(last, hidden[-1]) or (final is not None and torch.equal(final, hidden[-1]))


def test_identity_hooks_leave_logits_bit_identical(family_model):
    _, hf, model = family_model
    tokens = token_batch()
    with torch.no_grad():
        clean = model(tokens)
    # computed points (per-head inputs and results, norm scales) rebuild what follows them when replaced
    names = [n for n in model.hook_names() if not n.endswith("hook_pattern") and model.point(n).kind not in COMPUTED]
    with model.hooks({name: (lambda act, name: act.clone()) for name in names}), torch.no_grad():
        hooked = model(tokens)
    assert torch.equal(clean, hooked)
    # with pattern hooks too, the model runs HF's own eager attention: compare with HF eager
    attn = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(tokens)
    hf.set_attn_implementation(attn)
    names = [n for n in model.hook_names() if model.point(n).kind not in COMPUTED]
    with model.hooks({name: (lambda act, name: act) for name in names}), torch.no_grad():
        hooked = model(tokens)
    assert torch.equal(eager, hooked)


def test_z_through_output_projection_reproduces_attention_output(family_model):
    family, hf, model = family_model
    tokens = token_batch()
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        assert z.shape[-2:] == (model.info.n_heads, model.info.d_head)
        proj = model.root.get_submodule(f"{model.family.layers}.{layer}.{model.family.out_proj}")
        weight = proj.weight if family != "gpt2" else proj.weight.T  # GPT-2's Conv1D stores W transposed
        w_o = weight.T.reshape(model.info.n_heads, model.info.d_head, -1)  # [head, d_head, d_model]
        per_head = torch.einsum("bphd,hdm->bphm", z, w_o)
        summed = per_head.sum(2) + (proj.bias if proj.bias is not None else 0)
        if model.family.name in ("gemma", "olmo2", "bert"):  # attn_out is taken after a norm / equals the projection
            with torch.no_grad():
                target = proj(z.flatten(-2))
        else:
            target = cache[f"blocks.{layer}.hook_attn_out"]
        torch.testing.assert_close(summed, target, rtol=1e-5, atol=1e-5)


def test_pattern_matches_hf_eager_attentions_and_restores_sdpa(family_model):
    family, hf, model = family_model
    tokens = token_batch()
    before = hf.config._attn_implementation
    _, cache = model.run_with_cache(tokens, names=[f"blocks.{l}.attn.hook_pattern" for l in range(model.n_layers)])
    assert hf.config._attn_implementation == before
    hf.set_attn_implementation("eager")
    attentions = _hf_hidden(hf, tokens, output_attentions=True).attentions
    hf.set_attn_implementation(before)
    for layer, ref in enumerate(attentions):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert pattern.shape == (2, model.info.n_heads, 10, 10)
        assert torch.equal(pattern, ref)
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))


def test_replacing_a_pattern_with_itself_changes_nothing_and_uniform_pattern_changes_output(family_model):
    _, hf, model = family_model
    tokens = token_batch()
    name = "blocks.1.attn.hook_pattern"
    with torch.no_grad():
        clean = model(tokens)
        with model.hooks({name: lambda p, n: p.clone()}):
            same = model(tokens)
    torch.testing.assert_close(same, clean, rtol=1e-5, atol=1e-5)
    # a uniform pattern makes every query read the same average of the values: z equal across positions
    with model.hooks({name: lambda p, n: torch.full_like(p, 1.0 / p.shape[-1])}):
        _, cache = model.run_with_cache(tokens, names=["blocks.1.attn.hook_z"])
    z = cache["blocks.1.attn.hook_z"]
    torch.testing.assert_close(z, z[:, :1].expand_as(z), rtol=1e-5, atol=1e-6)
    _, clean_cache = model.run_with_cache(tokens, names=["blocks.1.attn.hook_z"])
    assert not torch.allclose(clean_cache["blocks.1.attn.hook_z"], z, atol=1e-5)


def test_replacing_resid_mid_reaches_the_residual_stream(family_model):
    family, _, model = family_model
    if not model.family.has_resid_mid:
        pytest.skip("parallel blocks have no resid_mid")
    tokens = token_batch()
    patch = torch.randn(2, 10, model.info.d_model)
    _, cache = model.run_with_cache(tokens, names=["blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out",
                                                   "blocks.1.hook_resid_post"])
    with model.hooks({"blocks.1.hook_resid_mid": lambda act, n: patch}):
        _, patched = model.run_with_cache(tokens, names=["blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out",
                                                         "blocks.1.hook_resid_post"])
    assert torch.equal(patched["blocks.1.hook_resid_mid"], patch)
    if model.family.topology == "prenorm":  # the residual branch must carry the patch, not just the MLP input
        assert torch.equal(patched["blocks.1.hook_resid_post"], patch + patched["blocks.1.hook_mlp_out"])
    assert not torch.allclose(patched["blocks.1.hook_resid_post"], cache["blocks.1.hook_resid_post"])


def test_zero_ablating_one_head_matches_removing_its_output_projection_slice(family_model):
    family, _, model = family_model
    tokens = token_batch()
    d_head = model.info.d_head

    def ablate(z, name):
        z = z.clone()
        z[:, :, 2] = 0
        return z
    with model.hooks({"blocks.0.attn.hook_z": ablate}):
        _, ablated = model.run_with_cache(tokens, names=["blocks.0.attn.hook_z"])
    assert ablated["blocks.0.attn.hook_z"][:, :, 2].abs().max() == 0
    proj = model.root.get_submodule(f"{model.family.layers}.0.{model.family.out_proj}")
    _, clean = model.run_with_cache(tokens, names=["blocks.0.attn.hook_z"])
    z = clean["blocks.0.attn.hook_z"].clone()
    z[:, :, 2] = 0
    with torch.no_grad():
        expected = proj(z.flatten(-2))
    got = {}
    with model.hooks({"blocks.0.attn.hook_z": ablate}):
        handle = proj.register_forward_hook(lambda m, a, o: got.setdefault("out", o))
        with torch.no_grad():
            model(tokens)
        handle.remove()
    assert torch.equal(got["out"], expected)
    assert d_head * model.info.n_heads == z.flatten(-2).shape[-1]


def test_stop_at_layer_gives_the_same_activations_as_a_full_run(family_model):
    _, _, model = family_model
    tokens = token_batch()
    _, full = model.run_with_cache(tokens, names=["blocks.1.hook_resid_post"])
    out, auto = model.run_with_cache(tokens, names=["blocks.1.hook_resid_post"], stop_at_layer="auto")
    assert out is None and torch.equal(full["blocks.1.hook_resid_post"], auto["blocks.1.hook_resid_post"])
    out, fixed = model.run_with_cache(tokens, names=["blocks.1.hook_mlp_out"], stop_at_layer=2)
    assert out is None and "blocks.1.hook_mlp_out" in fixed
    with pytest.raises(MechscopeError, match="stop_at_layer=1"):
        model.run_with_cache(tokens, names=["blocks.2.hook_resid_pre"], stop_at_layer=1)


def test_auto_stop_skips_later_layers():
    hf = tiny_hf("llama")
    model = mechscope.load_model(hf, device="cpu")
    ran = []
    handle = model.root.layers[2].register_forward_pre_hook(lambda *a: ran.append(2))
    model.run_with_cache(token_batch(), names=["blocks.0.hook_resid_post"], stop_at_layer="auto")
    handle.remove()
    assert ran == []


def test_gqa_exposes_every_query_head_and_config_head_dim():
    model = mechscope.load_model(tiny_hf("qwen3"), device="cpu")
    assert model.info.n_kv_heads == 2 and model.info.n_heads == 4
    assert model.hook_shape("blocks.0.attn.hook_z") == ("batch", "pos", 4, 16)  # head_dim 16 != 32 / 4
    assert model.hook_shape("blocks.0.attn.hook_pattern") == ("batch", 4, "pos", "pos")


def test_unknown_hook_name_lists_close_names():
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    with pytest.raises(HookNameError, match="blocks.1.hook_resid_post"):
        model.run_with_cache(token_batch(), names=["blocks.1.hook_resid_pst"])
    with pytest.raises(HookNameError):
        model.hook_shape("blocks.7.hook_resid_post")


def test_wrong_replacement_shape_names_both_shapes():
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    with pytest.raises(HookShapeError, match=r"\(2, 10, 31\).*\(2, 10, 32\)"):
        with model.hooks({"blocks.0.hook_resid_post": lambda act, n: act[..., :31]}):
            model(token_batch())


def test_unsupported_architecture_names_supported_families():
    from transformers import T5Config, T5Model

    t5 = T5Model(T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(UnsupportedModelError, match="gpt2.*llama"):
        mechscope.load_model(t5, device="cpu")


def test_hooks_are_removed_after_the_block():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu")
    tokens = token_batch()
    with torch.no_grad():
        clean = model(tokens)
        with model.hooks({"blocks.0.hook_resid_post": lambda act, n: torch.zeros_like(act)}):
            zeroed = model(tokens)
        after = model(tokens)
    assert not torch.allclose(clean, zeroed) and torch.equal(clean, after)


def test_gradients_flow_through_cached_activations():
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    out, cache = model.run_with_cache(token_batch(), names=["blocks.0.hook_resid_post"], grad=True)
    out[:, -1, 3].sum().backward()
    assert cache["blocks.0.hook_resid_post"].requires_grad
