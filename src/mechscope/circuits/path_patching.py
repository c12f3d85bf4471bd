"""Path patching (Wang et al. 2022, "Interpretability in the Wild", section 3.1): sender -> receiver effects.

For each sender head and receiver: (1) cache every head's output (hook_z; patching z is patching the
head's result) on the clean and the corrupted prompts; (2) run the clean prompts with the sender's output
taken from the corrupted run and every other head frozen to its clean output, and record the receiver's
input (a head's q/k/v input, an MLP's input or the final residual for "logits"); (3) run the clean
prompts with only the receiver's input replaced by that record, and measure the metric. MLPs recompute
in step 2, so paths through them count, as in the paper; `freeze_mlps` keeps direct paths only.
Senders are stacked along the batch (one copy of the prompts each), two forward passes per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.circuits.mib import candidate_edges, node_parts
from mechscope.circuits.patching import (Metric, chunk_starts, mean_metric, metric_per_copy, paired_inputs,
                                         stacked_inputs)
from mechscope.circuits.results import CircuitResult
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel


@dataclass(frozen=True)
class Receiver:
    """One receiving input: a hook and the head it covers there (None: the whole tensor)."""

    hook: str
    head: int | None


def receivers_of(model: HookedModel, name: str) -> list[Receiver]:
    """The inputs named by `name`: "a{l}.h{h}<q|k|v>", "a{l}.h{h}" (all three), "m{l}" or "logits".

    Grouped-query models share key and value inputs: "a{l}.h{h}<k>" patches the key input of head h's group.
    """
    kind, layer, head, port = node_parts(name)
    if kind == "input" or (layer is not None and layer >= model.n_layers) or (
            head is not None and head >= model.info.n_heads):
        raise MechscopeError(f"receiver {name!r} is not an input of this {model.n_layers}-layer, "
                             f"{model.info.n_heads}-head model; expected a{{l}}.h{{h}}<q|k|v>, m{{l}} or logits")
    if kind == "logits":
        return [Receiver(f"blocks.{model.n_layers - 1}.hook_resid_post", None)]
    if kind == "mlp":
        return [Receiver(f"blocks.{layer}.hook_mlp_in", None)]
    group = model.info.n_heads // model.info.n_kv_heads
    return [Receiver(f"blocks.{layer}.attn.hook_{p}_input", head if p == "q" else head // group) for p in (port or "qkv")]


def _frozen(clean: Tensor, corrupted: Tensor, rows: list[int | None], batch: int):
    """Hook replacing heads' outputs [copies * batch, pos, head, d] by the clean ones, except copy c's head rows[c]."""
    def fn(act: Tensor, _name: str) -> Tensor:
        new = clean.repeat(len(rows), *[1] * (clean.ndim - 1)).to(act.dtype)
        for copy, head in enumerate(rows):
            if head is not None:
                new[copy * batch:(copy + 1) * batch, :, head] = corrupted[:, :, head].to(act.dtype)
        return new
    return fn


def _receiver_patch(record: Tensor, heads: list[int | None]):
    def fn(act: Tensor, _name: str) -> Tensor:
        if None in heads:
            return record.to(act.dtype)
        new = act.clone()
        new[:, :, heads] = record[:, :, heads].to(act.dtype)
        return new
    return fn


def path_patching(model: HookedModel, clean, corrupted, metric: Metric, receivers: Sequence[str] = ("logits",),
                  senders: Sequence[str] | None = None, *, attention_mask: Tensor | None = None,
                  freeze_mlps: bool = False, max_rows: int = 64, progress: bool = False) -> CircuitResult:
    """Metric [receiver, sender] after patching the path sender -> receiver (see the module doc).

    senders: head names "a{l}.h{h}" (default: every head). Each receiver is a name receivers_of accepts;
    "a1.h2" patches its q, k and v inputs together. A sender that cannot reach a receiver (same or later
    layer) leaves the clean metric. Values are noising results: effect() is the change from the clean run.
    """
    n_heads = model.info.n_heads
    senders = list(senders) if senders is not None else [f"a{l}.h{h}" for l in range(model.n_layers)
                                                         for h in range(n_heads)]
    parsed = [node_parts(s) for s in senders]
    bad = [s for s, (kind, layer, head, _) in zip(senders, parsed)
           if kind != "attention" or layer >= model.n_layers or head >= n_heads]
    if bad or not senders or not receivers:
        raise MechscopeError(f"path patching needs senders named a{{l}}.h{{h}} within {model.n_layers} layers x "
                             f"{n_heads} heads and at least one receiver; got senders {bad or senders}, "
                             f"receivers {list(receivers)}")
    targets = {name: receivers_of(model, name) for name in receivers}
    clean_in, corrupt_in = paired_inputs(model, clean, corrupted, attention_mask)
    batch = len(clean_in["input_ids"])
    z_hooks = [f"blocks.{layer}.attn.hook_z" for layer in range(model.n_layers)]
    mlp_hooks = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.n_layers)] if freeze_mlps else []
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean_in, z_hooks + mlp_hooks)
        corrupt_logits, corrupt_cache = model.run_with_cache(corrupt_in, z_hooks)
    record_hooks = sorted({r.hook for rs in targets.values() for r in rs})
    per_forward = max(1, max_rows // batch)
    values = torch.zeros(len(receivers), len(senders))
    n_chunks = -(-len(senders) // per_forward)
    for start in chunk_starts(len(senders), per_forward, progress, "path patching"):
        chunk = parsed[start:start + per_forward]
        copies = len(chunk)
        hooks = {}
        for layer, hook in enumerate(z_hooks):
            rows = [head if sender_layer == layer else None for _, sender_layer, head, _ in chunk]
            hooks[hook] = _frozen(clean_cache[hook], corrupt_cache[hook], rows, batch)
        for hook in mlp_hooks:
            hooks[hook] = lambda act, name: clean_cache[name].repeat(copies, 1, 1).to(act.dtype)
        record: dict[str, Tensor] = {}

        def keep(act: Tensor, name: str) -> None:
            record[name] = act.detach().clone()
        stacked = stacked_inputs(clean_in, copies)
        with torch.no_grad(), model.hooks(list(hooks.items()) + [(h, keep) for h in record_hooks]):
            model(stacked)
        for row, (name, parts) in enumerate(targets.items()):
            patches = {}
            for hook in {r.hook for r in parts}:
                patches[hook] = _receiver_patch(record[hook], [r.head for r in parts if r.hook == hook])
            with torch.no_grad(), model.hooks(patches):
                logits = model(stacked)
            values[row, start:start + copies] = metric_per_copy(logits, metric, batch)
    info = {"noising": True, "prompts": batch, "senders": len(senders), "freeze_mlps": freeze_mlps,
            "forward_passes": 2 + n_chunks * (1 + len(receivers))}
    return CircuitResult(values, ("receiver", "sender"), {"receiver": list(receivers), "sender": senders},
                         "path_patching", info, clean=mean_metric(clean_logits, metric),
                         corrupted=mean_metric(corrupt_logits, metric))


def path_edge_scores(result: CircuitResult, model: HookedModel) -> dict[str, float]:
    """{"sender->receiver": effect} for the pairs of a path-patching result that are edges of MIB's graph."""
    edges = set(candidate_edges(model.n_layers, model.info.n_heads, model.family.topology == "parallel"))
    effect = result.effect()
    scores = {f"{sender}->{receiver}": float(effect[i, j]) for i, receiver in enumerate(result.labels["receiver"])
              for j, sender in enumerate(result.labels["sender"])}
    return {edge: value for edge, value in scores.items() if edge in edges}
