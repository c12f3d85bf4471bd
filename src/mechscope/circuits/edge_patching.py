"""The patch-mask engine: patch any set of edges of an `EdgeGraph` in one forward pass.

Each destination's input becomes `input + sum_s mask[s, d] * (replacement_s - output_s)` over the sources s
upstream of it, where output_s is what s wrote in this very forward pass (so unpatched edges carry the
current run's values, as in auto-circuit and EAP-IG). mask = 1 on every edge reproduces the replacement run
(the corrupted run when the replacement is its cache); mask = 0 leaves the run untouched. The mask may
require grad, and may have a leading axis of copies: each copy of the prompts gets its own mask, stacked
along the batch. Gradient methods differentiate at mask = 0 without building a mask (edge_attribution).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def source_values(model: HookedModel, graph: EdgeGraph, inputs: dict,
                  hooks: list[str] | None = None) -> tuple[Tensor, SourceValues]:
    """Logits and every source's output on `inputs` (or those of the source `hooks` only; no grad)."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(inputs, hooks or [g.hook for g in graph.source_groups])
    return logits, {hook: as_nodes(act) for hook, act in cache.items()}


def chunk_groups(groups: Sequence[HookGroup], size: int = 0, by_nodes: bool = True) -> list[list[HookGroup]]:
    """Consecutive groups with at most `size` nodes (or hooks, unless `by_nodes`) per chunk, a larger group
    alone; 0: one chunk."""
    chunks: list[list[HookGroup]] = []
    for group in groups:
        if chunks and (size <= 0 or sum(g.size if by_nodes else 1 for g in chunks[-1] + [group]) <= size):
            chunks[-1].append(group)
        else:
            chunks.append([group])
    return chunks


def source_chunks(graph: EdgeGraph, size: int = 0) -> list[list[HookGroup]]:
    """The graph's source groups in chunks of at most `size` nodes (see chunk_groups)."""
    return chunk_groups(graph.source_groups, size)


def _flat(diff: Tensor) -> Tensor:
    """[copies, batch, pos, n_nodes, d_model] -> [copies, n_nodes, batch * pos * d_model], the layout in which a
    destination's sum is one matrix product that autograd saves without copying."""
    return diff.permute(0, 3, 1, 2, 4).reshape(diff.shape[0], diff.shape[3], -1)


def _delta(mask: Tensor, group: HookGroup, sources: list[HookGroup], diffs: dict[str, Tensor]) -> Tensor:
    """sum over upstream sources of mask * diff for one destination hook: [copies or 1, size, batch * pos * d_model].

    A source whose difference is shared by every copy (`known`) and whose mask is too is summed once, not per
    copy (ACDC's candidates differ in one destination only). Sums accumulate in place, one allocation per
    destination and width: many short-lived tensors of one size fragment glibc's heap until the process holds
    gigabytes it no longer uses."""
    totals: dict[int, Tensor] = {}
    for source in sources:
        diff = diffs[source.hook]
        weights = mask[:, source.start:source.stop, group.start:group.stop].transpose(1, 2).to(diff.dtype)
        if len(diff) == 1 and bool((weights == weights[:1]).all()):
            weights = weights[:1]
        diff = diff.expand(len(weights), -1, -1)
        total = totals.get(len(weights))
        totals[len(weights)] = torch.bmm(weights, diff) if total is None else total.baddbmm_(weights, diff)
    return sum(totals.values())


def edge_hooks(graph: EdgeGraph, mask: Tensor, replacement: SourceValues,
               known: SourceValues | None = None) -> list[tuple[str, object]]:
    """Hook functions applying `mask` [copies?, n_sources, n_destinations] (see the module doc); `known` gives
    fixed differences for sources that do not run (a resumed pass's skipped blocks)."""
    mask = mask if mask.ndim == 3 else mask[None]
    copies = len(mask)
    found: SourceValues = {hook: _flat(diff[None]) for hook, diff in (known or {}).items()}

    def read(act: Tensor, name: str) -> None:
        value = as_nodes(act).unflatten(0, (copies, -1))
        found[name] = _flat(replacement[name][None].to(value.dtype) - value)
    hooks: list[tuple[str, object]] = [(group.hook, read) for group in graph.source_groups if group.hook not in found]

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


def mlp_width(model: HookedModel) -> int:
    """Neurons in each MLP's hidden layer (d_mlp)."""
    config = model.root.config
    return getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * model.info.d_model


def memory_estimate(model: HookedModel, graph: EdgeGraph, prompts: int, n_pos: int, grad: bool = True,
                    source_chunk: int = 0, copies: int = 1) -> dict:
    """Bytes one pass over `prompts` prompts holds, in units of one [prompts, pos, d_model] tensor ("token").

    grad (edge attribution): the clean and replacement outputs of one chunk of sources and their difference
    (3 per source node), and what autograd keeps: per layer each head's query/key/value input copy, its
    normalised form and the projection's input (3 per head copy), the MLP's hidden tensors (4 of d_mlp wide) and
    the block's residual and norm tensors (6). Without grad (patched forwards, `copies` circuits stacked): the
    replacement (1 per source) and this run's differences to it (`copies` per source).
    """
    bytes_per = torch.finfo(model.dtype).bits // 8
    token = prompts * n_pos * model.info.d_model * bytes_per
    if grad:
        held = max(sum(g.size for g in chunk) for chunk in source_chunks(graph, source_chunk))
        sources = 3 * held * token
        per_layer = 3 * (graph.n_heads + 2 * graph.n_kv_heads) + 4 * mlp_width(model) / model.info.d_model + 6
        saved = int(graph.n_layers * per_layer * token)
    else:
        sources, saved = (1 + copies) * graph.n_sources * token, 0
    logits = copies * prompts * n_pos * model.info.d_vocab * 4 * (3 if grad else 1)
    total = sources + saved + logits
    return {"source_values_bytes": sources, "backward_bytes": saved, "logits_bytes": logits, "total_bytes": total,
            "total_gib": round(total / 2**30, 3), "source_chunk": source_chunk}
