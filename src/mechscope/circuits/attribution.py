"""Attribution patching (Nanda 2023; Syed et al. 2023): a first-order estimate of every patch at once.

The effect of patching activation a from the source run into the base run is estimated as
(a_source - a_base) . d metric / d a_base: two forward passes and one backward for all sites.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.components import Component, component as resolve_component
from mechscope.circuits.patching import Metric, checked_metric, axis_labels, mean_metric, paired_inputs
from mechscope.circuits.results import CircuitResult
from mechscope.models import HookedModel


def _reduce(contribution: Tensor, comp: Component) -> Tensor:
    """Sum a [batch, ...] contribution over everything but the component's head and position axes."""
    keep = ([comp.head_dim] if comp.per_head else []) + ([comp.pos_dim] if comp.by_pos else [])
    rest = [d for d in range(contribution.ndim) if d not in keep]
    return contribution.permute(*keep, *rest).flatten(len(keep)).sum(-1)


def forward_with_grad(model: HookedModel, inputs: dict, hooks: list[str]) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and the activations at `hooks`, as tensors the rest of the forward pass is computed from,
    so gradients with respect to them exist (a cached view the model does not reuse would get none)."""
    acts: dict[str, Tensor] = {}

    def keep(act: Tensor, name: str) -> Tensor:
        acts[name] = act.clone()
        return acts[name]

    with torch.enable_grad(), model.hooks({hook: keep for hook in hooks}):
        logits = model(inputs)
    return logits, acts


def attribution_patching(model: HookedModel, clean, corrupted, metric: Metric, component: str | Component = "resid",
                         *, noising: bool = False, attention_mask: Tensor | None = None) -> CircuitResult:
    """Estimated metric after patching each site of `component`; same axes and baselines as activation_patching."""
    comp = resolve_component(component)
    clean_in, corrupt_in = paired_inputs(model, clean, corrupted, attention_mask)
    base, source_in = (clean_in, corrupt_in) if noising else (corrupt_in, clean_in)
    hooks = [comp.hook.format(layer=layer) for layer in range(model.n_layers)]
    with torch.no_grad():
        source_logits, source = model.run_with_cache(source_in, hooks)
    logits, acts = forward_with_grad(model, base, hooks)
    value = checked_metric(metric, logits.float(), len(base["input_ids"])).mean()
    grads = torch.autograd.grad(value, [acts[h] for h in hooks])
    estimates = torch.stack([_reduce((source[h] - acts[h].detach()) * g, comp) for h, g in zip(hooks, grads)])
    _, sizes = comp.patches(model, clean_in["input_ids"].shape[1])
    info = {"component": comp.name, "noising": noising, "prompts": len(clean_in["input_ids"]),
            "forward_passes": 2, "backward_passes": 1}
    baseline, source_value = float(value.detach()), mean_metric(source_logits, metric)
    clean_value, corrupt_value = (baseline, source_value) if noising else (source_value, baseline)
    return CircuitResult((baseline + estimates.detach().float()).cpu().view(*sizes.values()), tuple(sizes),
                         axis_labels(model, sizes, clean_in["input_ids"]), "attribution_patching", info,
                         clean=clean_value, corrupted=corrupt_value)


def _ranks(values: Tensor) -> Tensor:
    ranks = torch.empty_like(values)
    ranks[values.argsort()] = torch.arange(len(values), dtype=values.dtype)
    return ranks


def agreement(estimate: CircuitResult, exact: CircuitResult, k: int = 10) -> dict[str, float]:
    """How well attribution patching ranks sites: Spearman correlation of effects and top-k overlap by |effect|."""
    a, b = estimate.effect().reshape(-1).double(), exact.effect().reshape(-1).double()
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    spearman = float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))
    k = min(k, len(a))
    top_a, top_b = set(a.abs().topk(k).indices.tolist()), set(b.abs().topk(k).indices.tolist())
    return {"spearman": spearman, f"top{k}_overlap": len(top_a & top_b) / k, "k": k}
