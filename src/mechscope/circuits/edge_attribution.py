"""Edge attribution by gradients of the patch mask at mask = 0: EAP, EAP-IG and the clean-corrupted variant.

Every method scores edge (s, d) as (replacement_s - clean_s) . mean over gradient points of d metric / d input_d,
the change of the mean metric the edge's patch would cause to first order; they differ in where the gradient
is taken (EAP-IG code: github.com/hannamw/EAP-IG, src/eap/attribute.py):
- eap (Syed et al. 2023): at the clean run; 2 forward passes and 1 backward.
- eap-ig, EAP-IG-inputs (Hanna et al. 2024): at `steps` inputs on the straight line from the corrupted embedding to the
  clean one, input = corrupted + k / steps * (clean - corrupted) for k = 0 .. steps - 1.
- eap-ig-activations: the same path taken by each node group's output in turn (the embedding, each layer's
  heads, each MLP), k = 1 .. steps; every gradient is averaged.
- clean-corrupted: at the clean and at the corrupted run, averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mechscope.circuits.edge_patching import SourceValues, edge_hooks, replacement_values, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import Metric, checked_metric
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

EDGE_METHODS = ("eap", "eap-ig", "eap-ig-activations", "clean-corrupted")  # eap-ig: EAP-IG-inputs
INPUT_HOOK = "blocks.0.hook_resid_pre"


def _replace(value: Tensor) -> Callable:
    """A hook function setting the hooked tensor to `value` while gradients keep flowing through it (unlike
    EAP-IG's hooks, which return a constant and so cut the paths through the interpolated node)."""
    return lambda act, _name: act + (value.reshape(act.shape).to(act.dtype) - act).detach()


def mask_gradient(model: HookedModel, graph: EdgeGraph, inputs: dict, metric: Metric, *,
                  replacement: SourceValues | None = None, diffs: SourceValues | None = None,
                  extra_hooks: tuple = ()) -> tuple[Tensor, float]:
    """d mean metric / d mask at mask = 0 [n_sources, n_destinations] (zero off the edges), and the metric."""
    mask = torch.zeros(graph.n_sources, graph.n_destinations, device=model.device, requires_grad=True)
    hooks = list(extra_hooks) + edge_hooks(graph, mask, replacement=replacement, diffs=diffs)
    with torch.enable_grad(), model.hooks(hooks):
        logits = model(inputs)
        value = checked_metric(metric, logits.float(), len(inputs["input_ids"])).mean()
    (grad,) = torch.autograd.grad(value, mask)
    return grad.cpu() * graph.real, float(value.detach())


def _interpolated(clean: Tensor, corrupted: Tensor, alpha: float) -> Tensor:
    return corrupted + alpha * (clean - corrupted)


def edge_attribution(model: HookedModel, graph: EdgeGraph, clean_in: dict, corrupted_in: dict, metric: Metric,
                     method: str = "eap-ig", steps: int = 5, ablation: str = "patching",
                     means: SourceValues | None = None) -> tuple[Tensor, dict]:
    """Scores [n_sources, n_destinations] of every edge on one batch of prompts, and pass counts + baselines.

    `ablation` is what a patched edge carries (see `replacement_values`): the corrupted run's outputs, zeros or
    the sources' `means`.
    """
    if method not in EDGE_METHODS:
        raise MechscopeError(f"edge attribution method must be one of {', '.join(EDGE_METHODS)}, got {method!r}")
    if steps < 1:
        raise MechscopeError(f"integrated-gradient steps must be >= 1, got {steps}")
    rows = len(clean_in["input_ids"])
    corrupted_logits, corrupted = source_values(model, graph, corrupted_in)
    replacement = replacement_values(ablation, corrupted, means)
    info = {"method": method, "prompts": rows,
            "corrupted_metric": float(checked_metric(metric, corrupted_logits.float(), rows).mean())}
    if method == "eap":
        scores, info["clean_metric"] = mask_gradient(model, graph, clean_in, metric, replacement=replacement)
        return scores, {**info, "forward_passes": 2, "backward_passes": 1}
    clean_logits, clean = source_values(model, graph, clean_in)
    info["clean_metric"] = float(checked_metric(metric, clean_logits.float(), rows).mean())
    diffs = {hook: replacement[hook].to(value.dtype) - value for hook, value in clean.items()}
    grads = []
    if method == "clean-corrupted":
        grads = [mask_gradient(model, graph, run, metric, diffs=diffs)[0] for run in (clean_in, corrupted_in)]
    elif method == "eap-ig":
        start, end = corrupted[INPUT_HOOK], clean[INPUT_HOOK]
        for k in range(steps):
            hook = (INPUT_HOOK, _replace(_interpolated(end, start, k / steps)))
            grads.append(mask_gradient(model, graph, clean_in, metric, diffs=diffs, extra_hooks=(hook,))[0])
    else:
        for group in graph.source_groups:
            for k in range(1, steps + 1):
                hook = (group.hook, _replace(_interpolated(clean[group.hook], corrupted[group.hook], k / steps)))
                grads.append(mask_gradient(model, graph, clean_in, metric, diffs=diffs, extra_hooks=(hook,))[0])
    info.update(forward_passes=2 + len(grads), backward_passes=len(grads))
    return torch.stack(grads).mean(0), info
