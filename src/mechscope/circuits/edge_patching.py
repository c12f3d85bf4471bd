"""The patch-mask engine: patch any set of edges of an `EdgeGraph` in one forward pass.

Each destination's input becomes `input + sum_s mask[s, d] * (replacement_s - output_s)` over the sources s
upstream of it, where output_s is what s wrote in this very forward pass (so unpatched edges carry the
current run's values, as in auto-circuit and EAP-IG). mask = 1 on every edge reproduces the replacement run
(the corrupted run when the replacement is its cache); mask = 0 leaves the run untouched. The mask may
require grad, and may have a leading axis of copies: each copy of the prompts gets its own mask, stacked
along the batch. Given fixed `diffs` instead of a replacement, the hooks add `mask * diffs` and read no
sources: what gradient methods differentiate at mask = 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.graph import EdgeGraph, HookGroup
from mechscope.circuits.patching import stacked_inputs
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

SourceValues = dict[str, Tensor]  # source hook -> [batch, pos, n_nodes, d_model]


def as_nodes(act: Tensor) -> Tensor:
    """A hook tensor as [batch, pos, n_nodes, d_model] (one node for the embedding, an MLP or the logits)."""
    return act if act.ndim == 4 else act.unsqueeze(2)


def source_values(model: HookedModel, graph: EdgeGraph, inputs: dict) -> tuple[Tensor, SourceValues]:
    """Logits and every source's output on `inputs` (no grad)."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(inputs, [g.hook for g in graph.source_groups])
    return logits, {hook: as_nodes(act) for hook, act in cache.items()}


def _flat(diff: Tensor) -> Tensor:
    """[copies, batch, pos, n_nodes, d_model] -> [copies, n_nodes, batch * pos * d_model], the layout in which a
    destination's sum is one matrix product that autograd saves without copying."""
    return diff.permute(0, 3, 1, 2, 4).reshape(diff.shape[0], diff.shape[3], -1)


def _delta(mask: Tensor, group: HookGroup, sources: list[HookGroup], diffs: dict[str, Tensor]) -> Tensor:
    """sum over upstream sources of mask * diff for one destination hook: [copies, size, batch * pos * d_model].

    Accumulated in place, one allocation per destination: many short-lived tensors of one size fragment glibc's
    heap until the process holds gigabytes it no longer uses."""
    total = None
    for source in sources:
        diff = diffs[source.hook].expand(len(mask), -1, -1)
        weights = mask[:, source.start:source.stop, group.start:group.stop].transpose(1, 2).to(diff.dtype)
        total = torch.bmm(weights, diff) if total is None else total.baddbmm_(weights, diff)
    return total


def edge_hooks(graph: EdgeGraph, mask: Tensor, replacement: SourceValues | None = None,
               diffs: SourceValues | None = None, known: SourceValues | None = None) -> list[tuple[str, object]]:
    """Hook functions applying `mask` [copies?, n_sources, n_destinations] (see the module doc).

    Pass `replacement` (live: the difference to this run's own source outputs) or `diffs` (fixed). With
    `replacement`, `known` gives fixed differences for sources that do not run (a resumed pass's skipped blocks).
    """
    mask = mask if mask.ndim == 3 else mask[None]
    copies = len(mask)
    fixed = diffs if diffs is not None else known or {}
    found: SourceValues = {hook: _flat(diff[None]) for hook, diff in fixed.items()}
    hooks: list[tuple[str, object]] = []
    if diffs is None:
        def read(act: Tensor, name: str) -> None:
            value = as_nodes(act).unflatten(0, (copies, -1))
            found[name] = _flat(replacement[name][None].to(value.dtype) - value)
        hooks += [(group.hook, read) for group in graph.source_groups if group.hook not in fixed]

    for group in graph.destination_groups:
        sources = [source for source in graph.source_groups if source.stop <= group.upstream]

        def write(act: Tensor, _name: str, group=group, sources=sources) -> Tensor:
            nodes = as_nodes(act).unflatten(0, (copies, -1))  # [copies, batch, pos, size, d_model]
            delta = _delta(mask, group, sources, found).unflatten(-1, (*nodes.shape[1:3], nodes.shape[-1]))
            return (nodes + delta.permute(0, 2, 3, 1, 4).to(act.dtype)).flatten(0, 1).reshape(act.shape)
        hooks.append((group.hook, write))
    return hooks


ABLATIONS = ("patching", "zero", "mean")


def replacement_values(kind: str, corrupted: SourceValues, means: SourceValues | None = None) -> SourceValues:
    """What patched edges carry: the corrupted run's outputs ("patching"), zeros, or per-source means
    [n_nodes, d_model] ("mean", broadcast over prompts and positions)."""
    if kind not in ABLATIONS:
        raise MechscopeError(f"ablation must be one of {', '.join(ABLATIONS)}, got {kind!r}")
    if kind == "patching":
        return corrupted
    if kind == "zero":
        return {hook: torch.zeros_like(value) for hook, value in corrupted.items()}
    if means is None:
        raise MechscopeError("mean ablation needs the mean output of every source (source_means)")
    return {hook: means[hook].to(value).expand_as(value) for hook, value in corrupted.items()}


def source_sums(values: SourceValues, attention_mask: Tensor) -> tuple[SourceValues, int]:
    """Each source's output summed over prompts and real positions [n_nodes, d_model], and the token count."""
    weights = attention_mask.to(next(iter(values.values())).device)[:, :, None, None]
    return {hook: (value.float() * weights).sum((0, 1)) for hook, value in values.items()}, int(attention_mask.sum())


def run_with_edges(model: HookedModel, graph: EdgeGraph, inputs: dict, mask: Tensor,
                   replacement: SourceValues) -> Tensor:
    """Logits [copies * batch, pos, vocab] of `inputs` with the edges where `mask` is 1 patched from `replacement`."""
    copies = 1 if mask.ndim == 2 else len(mask)
    with model.hooks(edge_hooks(graph, mask.to(model.device), replacement)):
        return model(stacked_inputs(inputs, copies))


def memory_estimate(model: HookedModel, graph: EdgeGraph, prompts: int, n_pos: int, grad: bool = True) -> dict:
    """Bytes a pass over `prompts` prompts holds: the source differences [batch, pos, n_sources, d_model], their
    replacement and clean copies, and (with grad) the per-head destination inputs autograd keeps."""
    bytes_per = torch.finfo(model.dtype).bits // 8
    token = prompts * n_pos * model.info.d_model * bytes_per
    diffs = 3 * graph.n_sources * token  # replacement, clean (or this run's outputs) and their difference
    per_layer = graph.n_heads + 2 * graph.n_kv_heads + 2  # q/k/v copies, MLP input, residual
    saved = graph.n_layers * per_layer * token + graph.n_destinations * token if grad else 0
    logits = prompts * n_pos * model.info.d_vocab * 4 * (3 if grad else 1)
    total = diffs + saved + logits
    return {"source_values_bytes": diffs, "backward_bytes": saved, "logits_bytes": logits, "total_bytes": total,
            "total_gib": round(total / 2**30, 3)}
