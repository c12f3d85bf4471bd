"""The circuit and steering hook points on every family: attn_in/mlp_in, q/k/v and their per-head inputs,
per-head results, norm scales, router logits; checked against identities and hand-computed definitions."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import HookNameError, ReadOnlyHookError
from mechscope.models.self_test import residual_identities
from tests.conftest import tiny_hf, token_batch


def _module(model, layer: int, path: str):
    return model.root.get_submodule(f"{model.family.layers}.{layer}.{path}")


def _qkv_by_hand(model, x, layer: int) -> dict[str, torch.Tensor]:
    """q, k, v [batch, pos, head, d_head] the way each family's HF attention splits its projections."""
    info, family = model.info, model.family
    q_width, kv_width = info.n_heads * info.d_head, info.n_kv_heads * info.d_head
    with torch.no_grad():
        if family.qkv_layout == "split":
            q, k, v = (_module(model, layer, path)(x) for path in family.qkv)
        else:
            fused = _module(model, layer, family.qkv[0])(x)
            if family.qkv_layout == "interleaved":  # GPT-NeoX: [head][q|k|v][d_head]
                q, k, v = (t.flatten(-2) for t in fused.unflatten(-1, (info.n_heads, -1)).chunk(3, dim=-1))
            else:
                q, k, v = fused.split([q_width, kv_width, kv_width], dim=-1)
    heads = {"q": info.n_heads, "k": info.n_kv_heads, "v": info.n_kv_heads}
    return {p: t.unflatten(-1, (heads[p], info.d_head)) for p, t in zip("qkv", (q, k, v))}


def test_q_k_v_equal_the_projections_computed_by_hand(family_model):
    _, _, model = family_model
    _, cache = model.run_with_cache(token_batch())
    for layer in range(model.n_layers):
        normed = _norm_before_attention(model, layer, cache[f"blocks.{layer}.hook_attn_in"])
        expected = _qkv_by_hand(model, normed, layer)
        for part in "qkv":
            torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_{part}"], expected[part])


def _norm_before_attention(model, layer: int, x):
    """x through the norm in front of attention (TransformerLens's ln1), where the family has one."""
    if model.family.ln1 is None or model.family.topology == "postnorm":
        return x
    with torch.no_grad():
        return _module(model, layer, model.family.ln1)(x)


def test_per_head_inputs_are_copies_of_the_residual_input_and_reproject_to_q_k_v(family_model):
    _, _, model = family_model
    tokens = token_batch()
    _, cache = model.run_with_cache(tokens, model.hook_names())
    attn_in = cache["blocks.1.hook_attn_in"]
    for part, heads in zip("qkv", (model.info.n_heads, model.info.n_kv_heads, model.info.n_kv_heads)):
        copies = cache[f"blocks.1.attn.hook_{part}_input"]
        assert copies.shape == (*attn_in.shape[:2], heads, model.info.d_model)
        assert torch.equal(copies, attn_in.unsqueeze(2).expand_as(copies))
        # handing back an unmodified copy re-normalises and re-projects each head: q/k/v stay what they were
        with model.hooks({f"blocks.1.attn.hook_{part}_input": lambda act, name: act.clone()}):
            _, same = model.run_with_cache(tokens, names=[f"blocks.1.attn.hook_{part}"])
        torch.testing.assert_close(same[f"blocks.1.attn.hook_{part}"], cache[f"blocks.1.attn.hook_{part}"])


def test_replacing_one_heads_key_input_changes_that_heads_key_only(family_model):
    _, _, model = family_model
    tokens = token_batch()
    _, clean = model.run_with_cache(tokens, names=["blocks.1.attn.hook_k", "blocks.1.attn.hook_q"])
    other = torch.randn(2, 10, model.info.d_model, generator=torch.Generator().manual_seed(4))

    def replace_head_1(act, name):
        act[:, :, 1] = other  # the copy is the hook's own: editing it in place and returning it counts
        return act
    # attached before run_with_cache's k hook, on the same module; it still fires first (firing order)
    with model.hooks({"blocks.1.attn.hook_k_input": replace_head_1}):
        _, patched = model.run_with_cache(tokens, names=["blocks.1.attn.hook_k", "blocks.1.attn.hook_q"])
    k, clean_k = patched["blocks.1.attn.hook_k"], clean["blocks.1.attn.hook_k"]
    expected = _qkv_by_hand(model, _norm_before_attention(model, 1, other), 1)["k"][:, :, 1]
    torch.testing.assert_close(k[:, :, 1], expected)
    others = [h for h in range(k.shape[2]) if h != 1]
    torch.testing.assert_close(k[:, :, others], clean_k[:, :, others])  # re-projected, to rounding
    assert torch.equal(patched["blocks.1.attn.hook_q"], clean["blocks.1.attn.hook_q"])


def _projection_bias(model, layer: int, part: str):
    """Weights and bias of one of q/k/v per head, the latter zeros where the projection has none."""
    from mechscope.models.projections import QKVSlice

    info = model.info
    piece = QKVSlice(model.family, part, info.n_heads, info.n_kv_heads, info.d_head)
    path = model.family.qkv[0] if len(model.family.qkv) == 1 else model.family.qkv["qkv".index(part)]
    weight, bias = piece.weights(_module(model, layer, path))
    return weight, torch.zeros(weight.shape[:2]) if bias is None else bias.detach()


def test_head_results_sum_with_the_bias_to_the_attention_output(family_model):
    family, _, model = family_model
    _, cache = model.run_with_cache(token_batch(), model.hook_names())
    for layer in range(model.n_layers):
        result = cache[f"blocks.{layer}.attn.hook_result"]
        assert result.shape[2:] == (model.info.n_heads, model.info.d_model)
        out_proj = _module(model, layer, model.family.out_proj)
        summed = result.sum(2) + (out_proj.bias if out_proj.bias is not None else 0)
        if model.family.ln1_post is None:
            target = cache[f"blocks.{layer}.hook_attn_out"]
        else:  # sandwich: the heads sum to the input of ln1_post, the norm that closes the attention branch
            target = cache[f"blocks.{layer}.ln1_post.hook_normalized"] * cache[f"blocks.{layer}.ln1_post.hook_scale"]
        torch.testing.assert_close(summed, target, rtol=1e-5, atol=1e-5)


def test_zeroing_a_heads_result_equals_zeroing_its_z(family_model):
    _, _, model = family_model
    tokens = token_batch()

    def zero_head_2(act, name):
        act = act.clone()
        act[:, :, 2] = 0
        return act
    outs = {}
    for name in ("blocks.0.attn.hook_z", "blocks.0.attn.hook_result"):
        with model.hooks({name: zero_head_2}):
            _, outs[name] = model.run_with_cache(tokens, names=["blocks.0.hook_attn_out", "blocks.2.hook_resid_post"])
    by_z, by_result = outs.values()
    for name in by_z:
        torch.testing.assert_close(by_result[name], by_z[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("branch", ["attn", "mlp"])
def test_patching_a_branch_input_changes_that_branch_and_not_the_residual_stream(family_model, branch):
    _, _, model = family_model
    tokens = token_batch()
    names = [n for n in model.hook_names() if n.startswith("blocks.") and ".hook_" in n and "attn." not in n
             and "mlp." not in n and ".ln" not in n]
    _, clean = model.run_with_cache(tokens, names=names)
    patch = torch.randn(2, 10, model.info.d_model, generator=torch.Generator().manual_seed(3))
    with model.hooks({f"blocks.1.hook_{branch}_in": lambda act, name: patch}):
        _, patched = model.run_with_cache(tokens, names=names)
    assert torch.equal(patched[f"blocks.1.hook_{branch}_in"], patch)
    assert not torch.allclose(patched[f"blocks.1.hook_{branch}_out"], clean[f"blocks.1.hook_{branch}_out"])
    other = "mlp" if branch == "attn" else "attn"
    if branch == "mlp" or model.family.topology == "parallel":  # the other branch did not read the patch
        assert torch.equal(patched[f"blocks.1.hook_{other}_out"], clean[f"blocks.1.hook_{other}_out"])
    assert torch.equal(patched["blocks.1.hook_resid_pre"], clean["blocks.1.hook_resid_pre"])
    # the residual stream carries the clean input plus the patched branch's output, nothing else
    assert residual_identities(model, patched) == []


def _norm_io(model, module_path: str, tokens):
    """(input, output) of one norm module in a plain run, read with torch hooks."""
    seen = {}
    module = model.root.get_submodule(module_path)
    handle = module.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return seen["x"], seen["out"], module


def test_norm_hooks_hold_the_normalised_input_before_weight_and_bias(family_model):
    _, _, model = family_model
    tokens = token_batch()
    _, cache = model.run_with_cache(tokens)
    prefixes = sorted({n.rsplit(".", 1)[0] for n in cache if n.endswith(".hook_scale")})
    assert prefixes and all(f"{p}.hook_normalized" in cache for p in prefixes)
    offset = model.family.norm_offset
    for prefix in prefixes:
        point = model.point(f"{prefix}.hook_scale")
        x, out, norm = _norm_io(model, point.module, tokens)
        scale, normalized = cache[f"{prefix}.hook_scale"], cache[f"{prefix}.hook_normalized"]
        centred = x - x.mean(-1, keepdim=True) if isinstance(norm, torch.nn.LayerNorm) else x
        eps = norm.eps if hasattr(norm, "eps") else norm.variance_epsilon
        torch.testing.assert_close(scale, (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt())
        torch.testing.assert_close(normalized * scale, centred, rtol=1e-5, atol=1e-5)
        rebuilt = normalized * (offset + norm.weight) + (norm.bias if getattr(norm, "bias", None) is not None else 0)
        torch.testing.assert_close(rebuilt, out, rtol=1e-5, atol=1e-5)
        if prefix.endswith((".ln1", ".ln2")) and model.family.topology != "postnorm":  # what the branch reads
            torch.testing.assert_close(cache[f"{prefix}.hook_out"], out)
    if "ln_final.hook_out" in cache:  # in a run without pattern hooks (those switch to eager attention)
        _, out, _ = _norm_io(model, model.family.final_norm, tokens)
        assert torch.equal(model.run_with_cache(tokens, names="ln_final.hook_out")[1]["ln_final.hook_out"], out)


def test_replacing_a_pre_norm_output_changes_its_branch_only(family_model):
    _, _, model = family_model
    if model.family.ln2 is None or model.family.topology == "postnorm":
        with pytest.raises(HookNameError):
            model.point("blocks.0.ln2.hook_out")
        return
    tokens = token_batch()
    names = ["blocks.0.hook_attn_out", "blocks.0.hook_mlp_out"]
    _, clean = model.run_with_cache(tokens, names=names)
    with model.hooks({"blocks.0.ln2.hook_out": lambda out, name: out * 2}):
        _, doubled = model.run_with_cache(tokens, names=names)
    torch.testing.assert_close(doubled["blocks.0.hook_attn_out"], clean["blocks.0.hook_attn_out"])
    assert not torch.allclose(doubled["blocks.0.hook_mlp_out"], clean["blocks.0.hook_mlp_out"])


def test_replacing_the_final_scale_takes_effect(family_model):
    _, _, model = family_model
    if model.family.final_norm is None:  # BERT
        with pytest.raises(HookNameError, match="ln_final.hook_scale"):
            model.point("ln_final.hook_scale")
        return
    tokens = token_batch()
    names = ["ln_final.hook_normalized", "ln_final.hook_out"]
    clean_logits, clean = model.run_with_cache(tokens, names=names)
    with model.hooks({"ln_final.hook_scale": lambda scale, name: scale * 2}):
        logits, doubled = model.run_with_cache(tokens, names=names)
    torch.testing.assert_close(doubled["ln_final.hook_normalized"], clean["ln_final.hook_normalized"] / 2)
    norm = model.root.get_submodule(model.family.final_norm)
    bias = norm.bias if getattr(norm, "bias", None) is not None else 0
    torch.testing.assert_close(doubled["ln_final.hook_out"], (clean["ln_final.hook_out"] - bias) / 2 + bias)
    assert not torch.allclose(logits, clean_logits)


def test_doubling_ln1_scale_halves_the_projections_without_bias(family_model):
    _, _, model = family_model
    if model.family.ln1 is None or model.family.topology == "postnorm":
        pytest.skip("no norm before attention (OLMo2 normalises inside the branch; BERT's ln1 closes it)")
    tokens = token_batch()
    _, clean = model.run_with_cache(tokens, names=["blocks.0.attn.hook_q"])
    with model.hooks({"blocks.0.ln1.hook_scale": lambda scale, name: scale * 2}):
        _, halved = model.run_with_cache(tokens, names=["blocks.0.attn.hook_q"])
    _, bias = _projection_bias(model, 0, "q")
    torch.testing.assert_close(halved["blocks.0.attn.hook_q"] - bias, (clean["blocks.0.attn.hook_q"] - bias) / 2,
                               rtol=1e-5, atol=1e-5)


def test_gqa_shapes_of_the_new_points_and_per_head_copies_cached_only_by_name():
    model = mechscope.load_model(tiny_hf("qwen3"), device="cpu")
    _, cache = model.run_with_cache(token_batch())
    assert "blocks.0.attn.hook_q" in cache and "blocks.0.attn.hook_q_input" not in cache
    assert "blocks.0.attn.hook_result" not in cache
    shapes = {name: model.hook_shape(f"blocks.0.{name}") for name in (
        "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_q_input", "attn.hook_k_input", "attn.hook_result",
        "hook_attn_in", "ln1.hook_scale", "ln2.hook_normalized")}
    assert shapes == {"attn.hook_q": ("batch", "pos", 4, 16), "attn.hook_k": ("batch", "pos", 2, 16),
                      "attn.hook_v": ("batch", "pos", 2, 16), "attn.hook_q_input": ("batch", "pos", 4, 32),
                      "attn.hook_k_input": ("batch", "pos", 2, 32), "attn.hook_result": ("batch", "pos", 4, 32),
                      "hook_attn_in": ("batch", "pos", 32), "ln1.hook_scale": ("batch", "pos", 1),
                      "ln2.hook_normalized": ("batch", "pos", 32)}


def test_mixture_of_experts_router_logits_are_read_only():
    model = mechscope.load_model(tiny_hf("mixtral"), device="cpu")
    tokens = token_batch()
    _, cache = model.run_with_cache(tokens, names=["blocks.1.mlp.hook_router_logits", "blocks.1.ln2.hook_normalized"])
    gate = _module(model, 1, "mlp.gate")
    norm = _module(model, 1, "post_attention_layernorm")
    expected = (cache["blocks.1.ln2.hook_normalized"] * norm.weight) @ gate.weight.T
    torch.testing.assert_close(cache["blocks.1.mlp.hook_router_logits"], expected, rtol=1e-5, atol=1e-5)
    assert model.hook_shape("blocks.1.mlp.hook_router_logits") == ("batch", "pos", 4)
    assert "blocks.1.mlp.hook_post" not in model.hook_names()  # experts have no single down projection
    with pytest.raises(ReadOnlyHookError, match="hook_router_logits"):
        with model.hooks({"blocks.1.mlp.hook_router_logits": lambda act, name: act * 0}):
            model(tokens)


def test_a_frozen_final_scale_makes_the_final_norm_linear_for_gradients(family_model):
    _, _, model = family_model
    if model.family.final_norm is None:
        pytest.skip("BERT has no final norm")
    tokens = token_batch()
    last = f"blocks.{model.n_layers - 1}.hook_resid_post"
    _, clean = model.run_with_cache(tokens, names=["ln_final.hook_scale"])
    frozen = clean["ln_final.hook_scale"]
    with model.hooks({"ln_final.hook_scale": lambda scale, name: frozen}):
        _, cache = model.run_with_cache(tokens, names=[last, "ln_final.hook_out"], grad=True)
    direction = torch.randn(model.info.d_model, generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad((cache["ln_final.hook_out"] * direction).sum(), cache[last])
    norm = model.root.get_submodule(model.family.final_norm)
    weighted = (direction * (model.family.norm_offset + norm.weight)).detach().expand_as(grad)
    if isinstance(norm, torch.nn.LayerNorm):  # centring projects out the mean
        weighted = weighted - weighted.mean(-1, keepdim=True)
    torch.testing.assert_close(grad, weighted / frozen, rtol=1e-5, atol=1e-6)
