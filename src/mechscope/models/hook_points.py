"""Hook points: a TransformerLens name bound to one HF module and to how its tensor is read and replaced."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.models.families import Family

# How a point's tensor is taken from its module:
#   output   the module's output (first element when it returns a tuple)
#   input    the module's first input (positional or `hidden_states=`)
#   inplace  the module's first input, replaced in place so the residual branch that shares the
#            tensor sees the replacement too (resid_mid of pre-norm blocks)
#   heads    the output projection's input viewed as [batch, pos, n_heads, d_head]
#   pattern  the attention probabilities [batch, n_heads, q, k], from the attention interface
KINDS = ("output", "input", "inplace", "heads", "pattern")


@dataclass(frozen=True)
class HookPoint:
    name: str
    module: str  # dotted path relative to the model root
    kind: str
    layer: int | None  # None for points outside the blocks


def hook_points(family: Family, n_layers: int) -> list[HookPoint]:
    """All hook points of a model, in the order they fire during a forward pass."""
    points = [HookPoint("hook_embed", family.embed, "output", None)]
    for layer in range(n_layers):
        block = f"{family.layers}.{layer}"
        prefix = f"blocks.{layer}"
        points.append(HookPoint(f"{prefix}.hook_resid_pre", block, "input", layer))
        points.append(HookPoint(f"{prefix}.attn.hook_pattern", f"{block}.{family.attn_core}", "pattern", layer))
        points.append(HookPoint(f"{prefix}.attn.hook_z", f"{block}.{family.out_proj}", "heads", layer))
        points.append(HookPoint(f"{prefix}.hook_attn_out", f"{block}.{family.attn_out}", "output", layer))
        if family.mid is not None:
            mid_kind = "output" if family.topology == "postnorm" else "inplace"
            points.append(HookPoint(f"{prefix}.hook_resid_mid", f"{block}.{family.mid}", mid_kind, layer))
        points.append(HookPoint(f"{prefix}.mlp.hook_post", f"{block}.{family.mlp_down}", "input", layer))
        points.append(HookPoint(f"{prefix}.hook_mlp_out", f"{block}.{family.mlp_out}", "output", layer))
        points.append(HookPoint(f"{prefix}.hook_resid_post", block, "output", layer))
    if family.final_norm is not None:
        points.append(HookPoint("ln_final.hook_normalized", family.final_norm, "output", None))
    return points
