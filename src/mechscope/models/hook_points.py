"""Hook points: a TransformerLens name bound to one HF module and to how its tensor is read and replaced."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.models.families import Family

# How a point's tensor is taken from its module:
#   output      the module's output (first element when it returns a tuple)
#   input       the module's first input (positional or `hidden_states=`), replaced for that module only
#   inplace     the module's first input, replaced in place so the residual branch that shares the
#               tensor sees the replacement too (resid_mid of pre-norm blocks)
#   heads       the output projection's input viewed as [batch, pos, n_heads, d_head]
#   pattern     the attention probabilities [batch, n_heads, q, k], from the attention interface
#   qkv         one of q/k/v (`part`) sliced from its projection's output, [batch, pos, head, d_head]
#   qkv_input   per-head copies of attention's residual input (hook_attn_in, before the norm as in
#               TransformerLens), [batch, pos, head, d_model] (computed)
#   result      per-head output of the attention output projection, [batch, pos, head, d_model] (computed)
#   norm_scale / norm_normalized   a norm's scale [batch, pos, 1] and its input normalised before the
#               norm's weight and bias [batch, pos, d_model] (computed)
#   router      router logits of a mixture-of-experts block, [batch, pos, n_experts] (read only)
# Computed points are built from the module's tensors only while hooked; replacing one recomputes
# what follows from it with the module's own weights.
KINDS = ("output", "input", "inplace", "heads", "pattern", "qkv", "qkv_input", "result", "norm_scale",
         "norm_normalized", "router")
COMPUTED = ("qkv_input", "result", "norm_scale", "norm_normalized", "router")
PER_HEAD_COPIES = ("qkv_input", "result")  # [batch, pos, head, d_model]: cached only when asked for by name


@dataclass(frozen=True)
class HookPoint:
    name: str
    module: str  # dotted path relative to the model root
    kind: str
    layer: int | None  # None for points outside the blocks
    part: str | None = None  # "q" | "k" | "v" for the qkv and qkv_input kinds


def _norm_points(prefix: str, module: str, layer: int | None, output: bool = False) -> list[HookPoint]:
    """A norm's scale and normalised input; with `output`, also its output after weight and bias (`hook_out`:
    what the sub-block or unembedding after a pre-norm reads)."""
    points = [HookPoint(f"{prefix}.hook_scale", module, "norm_scale", layer),
              HookPoint(f"{prefix}.hook_normalized", module, "norm_normalized", layer)]
    return points + [HookPoint(f"{prefix}.hook_out", module, "output", layer)] if output else points


def _qkv_points(family: Family, block: str, prefix: str, layer: int) -> list[HookPoint]:
    modules = dict(zip("qkv", family.qkv if len(family.qkv) == 3 else family.qkv * 3))
    inputs = [HookPoint(f"{prefix}.attn.hook_{p}_input", f"{block}.{modules[p]}", "qkv_input", layer, p) for p in "qkv"]
    outputs = [HookPoint(f"{prefix}.attn.hook_{p}", f"{block}.{modules[p]}", "qkv", layer, p) for p in "qkv"]
    return inputs + outputs


def hook_points(family: Family, n_layers: int) -> list[HookPoint]:
    """All hook points of a model, in the order they fire during a forward pass."""
    points = [HookPoint("hook_embed", family.embed, "output", None)]
    for layer in range(n_layers):
        block = f"{family.layers}.{layer}"
        prefix = f"blocks.{layer}"
        points.append(HookPoint(f"{prefix}.hook_resid_pre", block, "input", layer))
        points.append(HookPoint(f"{prefix}.hook_attn_in", f"{block}.{family.attn_in}", "input", layer))
        if family.ln1 is not None and family.topology != "postnorm":
            points += _norm_points(f"{prefix}.ln1", f"{block}.{family.ln1}", layer, output=True)
        points += _qkv_points(family, block, prefix, layer)
        points.append(HookPoint(f"{prefix}.attn.hook_pattern", f"{block}.{family.attn_core}", "pattern", layer))
        points.append(HookPoint(f"{prefix}.attn.hook_z", f"{block}.{family.out_proj}", "heads", layer))
        points.append(HookPoint(f"{prefix}.attn.hook_result", f"{block}.{family.out_proj}", "result", layer))
        if family.ln1_post is not None:
            points += _norm_points(f"{prefix}.ln1_post", f"{block}.{family.ln1_post}", layer)
        points.append(HookPoint(f"{prefix}.hook_attn_out", f"{block}.{family.attn_out}", "output", layer))
        if family.topology == "postnorm":
            points += _norm_points(f"{prefix}.ln1", f"{block}.{family.ln1}", layer)
        if family.mid is not None:
            mid_kind = "output" if family.topology == "postnorm" else "inplace"
            points.append(HookPoint(f"{prefix}.hook_resid_mid", f"{block}.{family.mid}", mid_kind, layer))
        points.append(HookPoint(f"{prefix}.hook_mlp_in", f"{block}.{family.mlp_in}", "input", layer))
        if family.ln2 is not None and family.topology != "postnorm":
            points += _norm_points(f"{prefix}.ln2", f"{block}.{family.ln2}", layer, output=True)
        if family.router is not None:
            points.append(HookPoint(f"{prefix}.mlp.hook_router_logits", f"{block}.{family.router}", "router", layer))
        if family.mlp_down is not None:
            points.append(HookPoint(f"{prefix}.mlp.hook_post", f"{block}.{family.mlp_down}", "input", layer))
        if family.ln2_post is not None:
            points += _norm_points(f"{prefix}.ln2_post", f"{block}.{family.ln2_post}", layer)
        points.append(HookPoint(f"{prefix}.hook_mlp_out", f"{block}.{family.mlp_out}", "output", layer))
        if family.topology == "postnorm":
            points += _norm_points(f"{prefix}.ln2", f"{block}.{family.ln2}", layer)
        points.append(HookPoint(f"{prefix}.hook_resid_post", block, "output", layer))
    if family.final_norm is not None:
        points += _norm_points("ln_final", family.final_norm, None, output=True)
    return points
