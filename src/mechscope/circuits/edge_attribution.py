"""Edge attribution by gradients of the patch mask at mask = 0: EAP, EAP-IG and the clean-corrupted variant.

Every method scores edge (s, d) as (replacement_s - clean_s) . mean over gradient points of d metric / d input_d,
the change of the mean metric the edge's patch would cause to first order: d metric / d mask[s, d] at mask = 0.
At mask = 0 the patched run is the plain run, so no mask is built: each destination's gradient is contracted with
the source differences in a backward hook as it arrives, and only the sources of one chunk are held
(`source_chunk` nodes; each further chunk repeats the passes). The methods differ in where the gradient is taken
(EAP-IG code: github.com/hannamw/EAP-IG, src/eap/attribute.py):
- eap (Syed et al. 2023): at the clean run; 2 forward passes and 1 backward.
- eap-ig, EAP-IG-inputs (Hanna et al. 2024): at `steps` inputs on the straight line from the corrupted embedding to the
  clean one, input = corrupted + k / steps * (clean - corrupted) for k = 0 .. steps - 1.
- eap-ig-activations: along the path each node group's output takes from corrupted to clean (the embedding, each
  layer's heads, each MLP), k = 1 .. steps, the rest of the run clean. An edge takes the gradients of the path its
  own source moves along, so a group's edges add up to the effect of patching the group (integrated gradients'
  completeness). Hanna et al.'s code averages every path's gradient into every edge instead, which mixes in
  gradients taken where the source did not move (on the induction organism: ROC AUC 0.70 against 0.91).
- clean-corrupted: at the clean and at the corrupted run, averaged.
The same passes score nodes (`level="node"`: each source's difference . the gradient at its own output, which is
the sum of its outgoing edges' scores) and MLP neurons (`level="neuron"`: activation difference x gradient on
each MLP's hidden, blocks.{l}.mlp.hook_post; eap-ig-activations integrates along each layer's hidden).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mechscope.circuits.edge_patching import (SourceValues, as_nodes, chunk_groups, mlp_width,
                                              replacement_values,
                                              source_values)
from mechscope.circuits.graph import EdgeGraph, HookGroup
from mechscope.circuits.patching import Metric, checked_metric
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

EDGE_METHODS = ("eap", "eap-ig", "eap-ig-activations", "clean-corrupted")  # eap-ig: EAP-IG-inputs
LEVELS = ("edge", "node", "neuron")
INPUT_HOOK = "blocks.0.hook_resid_pre"
FlatValues = dict[str, Tensor]  # source hook -> [n_nodes, batch * pos * d_model]


def flat_nodes(act: Tensor) -> Tensor:
    """A hook tensor as [n_nodes, batch * pos * d_model]: one row per graph node."""
    nodes = as_nodes(act)
    return nodes.permute(2, 0, 1, 3).reshape(nodes.shape[2], -1)


def neuron_groups(model: HookedModel) -> list[HookGroup]:
    """Each MLP's hidden (blocks.{l}.mlp.hook_post) as a group of d_mlp neurons, numbered layer by layer."""
    width = mlp_width(model)
    return [HookGroup(f"blocks.{layer}.mlp.hook_post", layer * width, width) for layer in range(model.n_layers)]


def unit_names(graph: EdgeGraph, model: HookedModel, level: str) -> tuple[str, ...]:
    """What a level scores: edge names, source node names, or MLP neurons `m{l}.n{i}`."""
    if level == "edge":
        return graph.edge_names
    if level == "node":
        return graph.sources
    return tuple(f"m{g.start // g.size}.n{i}" for g in neuron_groups(model) for i in range(g.size))


def set_value(value: Tensor) -> Callable:
    """A hook function setting the hooked tensor to `value` while gradients keep flowing through it (unlike
    EAP-IG's hooks, which return a constant and so cut the paths through the interpolated node)."""
    return lambda act, _name: act + (value.reshape(act.shape).to(act.dtype) - act).detach()


def gradient_scores(model: HookedModel, graph: EdgeGraph, inputs: dict, metric: Metric, groups: list[HookGroup], *,
                    diffs: SourceValues | None = None, replacement: SourceValues | None = None,
                    extra_hooks: tuple = (), level: str = "edge") -> tuple[Tensor, float]:
    """d mean metric / d mask at mask = 0 for the edges out of `groups` [n_sources, n_destinations] (zero elsewhere)
    and the metric; at `level` node or neuron, difference . gradient at each unit of `groups` [n_units]. The
    differences are fixed `diffs` ([n_nodes, batch * pos * d_model] for edges, as_nodes for units), or
    `replacement` minus this run's own outputs."""
    edges = level == "edge"
    units = graph.n_sources if level == "node" else model.n_layers * mlp_width(model)
    scores = torch.zeros(graph.n_sources, graph.n_destinations) if edges else torch.zeros(units)
    found: SourceValues = dict(diffs or {})
    anchor = torch.zeros((), device=model.device, requires_grad=True)  # makes every activation part of the graph
    watched = {group.hook for group in groups} if level != "edge" else set()
    hooks = [(INPUT_HOOK, lambda act, _name: act + anchor.to(act.dtype))]
    hooks += [(name, fn) for name, fn in extra_hooks if name not in watched or name == INPUT_HOOK]
    if replacement is not None:
        def read(act: Tensor, name: str) -> None:
            diff = replacement[name].to(act.dtype) - as_nodes(act.detach())
            found[name] = flat_nodes(diff) if edges else diff
        hooks += [(group.hook, read) for group in groups]

    def watch(target: HookGroup, contract: Callable) -> tuple[str, Callable]:
        # hooks on a computed point (head results) each see the module's own value, so an interpolation hook on
        # the watched point is applied here rather than beside it
        before = [fn for name, fn in extra_hooks if name == target.hook and name != INPUT_HOOK]

        def hook(act: Tensor, name: str) -> Tensor:
            for fn in before:
                act = fn(act, name)
            act = act.view_as(act)  # what the destination reads alone, not the residual stream that also holds it
            act.register_hook(lambda grad: contract(target, grad))
            return act
        return target.hook, hook

    def into_edges(target: HookGroup, grad: Tensor) -> None:
        flat = flat_nodes(grad).to(torch.float32)  # [size, batch * pos * d_model]
        for group in groups:
            if group.stop <= target.upstream:
                part = found[group.hook].to(torch.float32) @ flat.T
                scores[group.start:group.stop, target.start:target.stop] += part.cpu()

    def into_units(target: HookGroup, grad: Tensor) -> None:
        product = (found[target.hook].float() * as_nodes(grad).float()).sum((0, 1))  # [n_nodes, width]
        scores[target.start:target.stop] += (product.sum(-1) if level == "node" else product.flatten()).cpu()

    if edges:
        hooks += [watch(t, into_edges) for t in graph.destination_groups if any(g.stop <= t.upstream for g in groups)]
    else:
        hooks += [watch(group, into_units) for group in groups]
    with torch.enable_grad(), model.hooks(hooks):
        value = checked_metric(metric, model(inputs).float(), len(inputs["input_ids"])).mean()
        torch.autograd.grad(value, anchor)
    return (scores * graph.real if edges else scores), float(value.detach())


def interpolate(clean: Tensor, corrupted: Tensor, alpha: float) -> Tensor:
    return corrupted + alpha * (clean - corrupted)


def edge_attribution(model: HookedModel, graph: EdgeGraph, clean_in: dict, corrupted_in: dict, metric: Metric,
                     method: str = "eap-ig", steps: int = 5, ablation: str = "patching",
                     means: SourceValues | None = None, source_chunk: int = 0,
                     level: str = "edge") -> tuple[Tensor, dict]:
    """Scores of every edge [n_sources, n_destinations] (or node [n_sources], or MLP neuron [n_layers * d_mlp]:
    `level`) on one batch of prompts, and pass counts + baselines.

    `ablation` is what a patched edge carries (see `replacement_values`): the corrupted run's outputs, zeros or
    the sources' `means`. `source_chunk` > 0 holds the outputs of at most that many sources (MLP hiddens at the
    neuron level) at once, a group of heads never split, and repeats the passes for each chunk; 0 holds all.
    """
    if method not in EDGE_METHODS:
        raise MechscopeError(f"edge attribution method must be one of {', '.join(EDGE_METHODS)}, got {method!r}")
    if level not in LEVELS:
        raise MechscopeError(f"attribution level must be one of {', '.join(LEVELS)}, got {level!r}")
    if steps < 1:
        raise MechscopeError(f"integrated-gradient steps must be >= 1, got {steps}")
    if level == "neuron" and ablation == "mean":
        raise MechscopeError("neuron attribution patches from the corrupted run or zeros; mean ablation is per node")
    rows = len(clean_in["input_ids"])
    units = neuron_groups(model) if level == "neuron" else list(graph.source_groups)
    chunks = chunk_groups(units, source_chunk, by_nodes=level != "neuron")
    scores = torch.zeros(graph.n_sources, graph.n_destinations) if level == "edge" else torch.zeros(units[-1].stop)
    info, forward, backward = {"method": method, "level": level, "prompts": rows}, 0, 0

    def run(inputs: dict, groups: list[HookGroup], **kwargs) -> Tensor:
        return gradient_scores(model, graph, inputs, metric, groups, level=level, **kwargs)[0]
    for groups in chunks:
        hooks = sorted({group.hook for group in groups} | ({INPUT_HOOK} if method == "eap-ig" else set()))
        corrupted_logits, corrupted = source_values(model, graph, corrupted_in, hooks)
        info["corrupted_metric"] = float(checked_metric(metric, corrupted_logits.float(), rows).mean())
        replacement = replacement_values(ablation, corrupted, means)
        grads = 1 if method == "eap" else 2 if method == "clean-corrupted" else steps * (
            len(groups) if method == "eap-ig-activations" else 1)
        forward, backward = forward + (1 if method == "eap" else 2) + grads, backward + grads
        if method == "eap":
            part, info["clean_metric"] = gradient_scores(model, graph, clean_in, metric, groups, level=level,
                                                         replacement=replacement)
            scores += part
            continue
        clean_logits, clean = source_values(model, graph, clean_in, hooks)
        info["clean_metric"] = float(checked_metric(metric, clean_logits.float(), rows).mean())
        diffs = {g.hook: replacement[g.hook].to(clean[g.hook].dtype) - clean[g.hook] for g in groups}
        diffs = {hook: flat_nodes(diff) for hook, diff in diffs.items()} if level == "edge" else diffs
        if method == "clean-corrupted":
            scores += sum(run(inputs, groups, diffs=diffs) for inputs in (clean_in, corrupted_in)) / 2
        elif method == "eap-ig":
            start, end = corrupted[INPUT_HOOK], clean[INPUT_HOOK]
            for k in range(steps):
                hook = (INPUT_HOOK, set_value(interpolate(end, start, k / steps)))
                scores += run(clean_in, groups, diffs=diffs, extra_hooks=(hook,)) / steps
        else:
            for group in groups:
                for k in range(1, steps + 1):
                    hook = (group.hook, set_value(interpolate(clean[group.hook], corrupted[group.hook], k / steps)))
                    scores += run(clean_in, [group], diffs=diffs, extra_hooks=(hook,)) / steps
    info.update(forward_passes=forward, backward_passes=backward, source_chunks=len(chunks))
    return scores, info
