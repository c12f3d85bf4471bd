"""Load-time self-test: every hook fires and the residual identities its names promise hold."""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.errors import SelfTestError


def _close(a: Tensor, b: Tensor) -> bool:
    tol = 1e-5 if a.dtype == torch.float32 else 2e-2
    scale = max(a.abs().max().item(), b.abs().max().item(), 1.0)
    return torch.allclose(a.float(), b.float(), rtol=tol, atol=tol * scale)


def residual_identities(model, cache: dict[str, Tensor]) -> list[str]:
    """Names of the identities the cache breaks (empty when the hook names mean what they say)."""
    broken = []
    family = model.family
    blocks = model.root.get_submodule(family.layers)
    for layer in range(model.n_layers):
        c = {k.split(".", 2)[-1]: v for k, v in cache.items() if k.startswith(f"blocks.{layer}.")}
        pre, attn, mlp, post = c["hook_resid_pre"], c["hook_attn_out"], c["hook_mlp_out"], c["hook_resid_post"]
        if family.topology == "prenorm":
            checks = {"resid_pre + attn_out == resid_mid": (pre + attn, c["hook_resid_mid"]),
                      "resid_mid + mlp_out == resid_post": (c["hook_resid_mid"] + mlp, post)}
        elif family.topology == "parallel":
            checks = {"resid_pre + attn_out + mlp_out == resid_post": (pre + attn + mlp, post)}
        else:
            norm_attn, norm_mlp = (blocks[layer].get_submodule(p) for p in family.post_norms)
            with torch.no_grad():
                checks = {"LN(resid_pre + attn_out) == resid_mid": (norm_attn(pre + attn), c["hook_resid_mid"]),
                          "LN(resid_mid + mlp_out) == resid_post": (norm_mlp(c["hook_resid_mid"] + mlp), post)}
        if layer + 1 < model.n_layers:
            checks["resid_post == next resid_pre"] = (post, cache[f"blocks.{layer + 1}.hook_resid_pre"])
        broken += [f"blocks.{layer}: {name}" for name, (a, b) in checks.items() if not _close(a, b)]
    return broken


def head_identities(model, cache: dict[str, Tensor]) -> list[str]:
    """Names of the per-head identities the cache breaks: sum of hook_result + bias == the projection's output."""
    from mechscope.models.projections import sum_results

    broken = []
    for layer in range(model.n_layers):
        out_proj = model.root.get_submodule(f"{model.family.layers}.{layer}.{model.family.out_proj}")
        with torch.no_grad():
            summed = sum_results(out_proj, cache[f"blocks.{layer}.attn.hook_result"])
            direct = out_proj(cache[f"blocks.{layer}.attn.hook_z"].flatten(-2))
        if not _close(summed, direct):
            broken.append(f"blocks.{layer}: sum of attn.hook_result + bias == output projection")
    return broken


def self_test(model) -> None:
    """Run every hook on a few tokens; record hook shapes; raise SelfTestError on a broken promise."""
    tokens = (torch.arange(1, 9) % model.info.d_vocab)[None]
    _, cache = model.run_with_cache(tokens, model.hook_names())
    missing = [n for n in model.hook_names() if n not in cache]
    if missing:
        raise SelfTestError(f"{model.info.name}: hooks never fired: {missing}")
    broken = residual_identities(model, cache) + head_identities(model, cache)
    if broken:
        raise SelfTestError(f"{model.info.name} ({model.family.name} adapter): broken identities: {broken}")
    model._shapes = {
        name: tuple(t.shape[1:2]) if model.point(name).kind == "pattern" else tuple(t.shape[2:])
        for name, t in cache.items()
    }
