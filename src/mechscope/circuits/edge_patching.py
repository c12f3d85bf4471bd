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
from functools import partial

import torch
from torch import Tensor

from mechscope.circuits.edge_differences import SourceDifferences
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


def flat_differences(replacement: SourceValues, values: SourceValues) -> SourceValues:
    """replacement - values of each source in the engine's layout [1, n_nodes, batch * pos * d_model]: what
    `edge_hooks` takes as `known` differences."""
    return {hook: _flat((replacement[hook].to(value.dtype) - value)[None]) for hook, value in values.items()}


def edge_hooks(graph: EdgeGraph, mask: Tensor, replacement: SourceValues,
               known: SourceValues | None = None) -> list[tuple[str, object]]:
    """Hook functions applying `mask` [copies?, n_sources, n_destinations] (see the module doc); `known` gives
    fixed differences (flat_differences) for sources that do not run (a resumed pass's skipped blocks). Only the
    running sums of fully patched sources and the sources with mixed mask rows are held (edge_differences)."""
    mask = mask if mask.ndim == 3 else mask[None]
    copies = len(mask)
    held = SourceDifferences(graph, mask)
    for group in graph.source_groups:
        if group.hook in (known or {}):
            held.add(group, known[group.hook])

    def read(act: Tensor, name: str, group: HookGroup) -> None:
        value = as_nodes(act).unflatten(0, (copies, -1))
        held.add(group, _flat(replacement[name][None].to(value.dtype) - value))
    hooks: list[tuple[str, object]] = [(group.hook, partial(read, group=group)) for group in graph.source_groups
                                       if group.hook not in (known or {})]

    def write(act: Tensor, _name: str, group: HookGroup) -> Tensor:
        delta = held.into(group)
        if delta is None:
            return act
        nodes = as_nodes(act).unflatten(0, (copies, -1))  # [copies, batch, pos, size, d_model]
        delta = delta.unflatten(-1, (*nodes.shape[1:3], nodes.shape[-1]))
        return (nodes + delta.permute(0, 2, 3, 1, 4).to(act.dtype)).flatten(0, 1).reshape(act.shape)
    return hooks + [(group.hook, partial(write, group=group)) for group in graph.destination_groups]


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
                    source_chunk: int = 0, copies: int = 1, held: int | None = None, known: bool = False,
                    positions: int | None = None) -> dict:
    """Bytes one pass over `prompts` prompts holds, in units of one [prompts, pos, d_model] tensor ("token").

    grad (edge attribution): the clean and replacement outputs of one chunk of sources and their difference
    (3 per source node), and what autograd keeps: per layer each head's query/key/value input copy, its
    normalised form and the projection's input (3 per head copy), the MLP's hidden tensors (4 of d_mlp wide) and
    the block's residual and norm tensors (6). Without grad (patched forwards, `copies` circuits stacked): the
    replacement (1 per source), the running sums of fully patched sources (2 per copy: the sum and one source
    not yet upstream of what is read), the `held` mixed sources (edge_differences.held_counts; None: every source
    of every copy), the differences resumed passes reuse (1 per source, `known`), and the forward's own largest
    tensors per copy (the MLP's hidden layer twice, 4 residual-wide tensors and the attention scores twice).
    Logits: `positions` unembedded per prompt (None: all).
    """
    bytes_per = torch.finfo(model.dtype).bits // 8
    token = prompts * n_pos * model.info.d_model * bytes_per
    if grad:
        most = max(sum(g.size for g in chunk) for chunk in source_chunks(graph, source_chunk))
        sources = 3 * most * token
        per_layer = 3 * (graph.n_heads + 2 * graph.n_kv_heads) + 4 * mlp_width(model) / model.info.d_model + 6
        saved = int(graph.n_layers * per_layer * token)
    else:
        held = copies * graph.n_sources if held is None else held
        sources = (graph.n_sources * (2 if known else 1) + 2 * copies + held) * token
        scores = 2 * graph.n_heads * n_pos * n_pos * prompts * bytes_per
        saved = int(copies * ((2 * mlp_width(model) / model.info.d_model + 4) * token + scores))
    logits = copies * prompts * (positions or n_pos) * model.info.d_vocab * 4 * (3 if grad else 1)
    total = sources + saved + logits
    return {"source_values_bytes": sources, "backward_bytes" if grad else "forward_bytes": saved,
            "logits_bytes": logits, "total_bytes": total, "total_gib": round(total / 2**30, 3),
            "source_chunk": source_chunk}
