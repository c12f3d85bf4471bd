"""Direct logit attribution: each component's share of the answer-minus-wrong logit difference.

The final residual is embed + sum of attention and MLP outputs (per head where `hook_result` exists).
With the final norm's scale frozen at its value on the real residual, the readout is linear, so each
component's contribution center(c) / scale * gamma . (W_U[answer] - W_U[wrong]) plus one constant
(the norm's bias and the unembedding bias) sums to the model's logit difference exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.patching import model_inputs, position_labels, token_strings
from mechscope.circuits.readout import readout
from mechscope.circuits.results import CircuitResult
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel
from mechscope.models.unembedding import norm_scale


def last_positions(attention_mask: Tensor) -> Tensor:
    """Index of each row's last real token (right padding)."""
    return attention_mask.sum(1) - 1


def _post_norm_gamma(model: HookedModel, layer: int) -> Tensor:
    block = model.root.get_submodule(model.family.layers)[layer]
    return norm_scale(block.get_submodule(model.family.ln1_post), model.info.d_model)


def _terms(model: HookedModel, cache: dict[str, Tensor], per_head: bool) -> list[tuple[str, Tensor]]:
    """(label, residual contribution [batch, pos, d_model]) for every component writing to the residual.

    Sandwich-norm families (Gemma2/3, OLMo2) normalise the attention output before adding it: each head's
    result then goes through that norm with its scale frozen, which keeps the split linear and exact."""
    terms = [("embed", cache["blocks.0.hook_resid_pre"])]
    for layer in range(model.n_layers):
        attn = cache[f"blocks.{layer}.hook_attn_out"]
        if per_head:
            heads = cache[f"blocks.{layer}.attn.hook_result"]  # [batch, pos, head, d_model]
            if model.family.ln1_post is not None:
                scale = cache[f"blocks.{layer}.ln1_post.hook_scale"][:, :, None]  # [batch, pos, 1, 1]
                heads = heads / scale * _post_norm_gamma(model, layer).to(heads.dtype)
            terms += [(f"L{layer}H{h}", heads[:, :, h]) for h in range(heads.shape[2])]
            terms.append((f"L{layer} attn bias", attn - heads.sum(2)))
        else:
            terms.append((f"L{layer} attn", attn))
        terms.append((f"L{layer} mlp", cache[f"blocks.{layer}.hook_mlp_out"]))
    return terms


def direct_logit_attribution(model: HookedModel, tokens, answer: Tensor, wrong: Tensor | None = None, *,
                             attention_mask: Tensor | None = None, positions: Tensor | str = "last",
                             per_head: bool = True) -> CircuitResult:
    """Contributions [component] (mean over prompts) to logit(answer) - logit(wrong) at each prompt's position.

    positions: "last" (each row's last real token), a [batch] tensor of positions, or "all" (every
    position, giving axes (component, pos)). per_head splits attention by head through `hook_result`.
    """
    if model.family.topology == "postnorm":
        raise MechscopeError("direct logit attribution needs a pre-norm residual stream; "
                             f"{model.family.name} blocks normalise after each residual add")
    inputs = model_inputs(model, tokens, attention_mask)
    per_head = per_head and "blocks.0.attn.hook_result" in model.hook_names()
    last = model.n_layers - 1
    names = ["blocks.0.hook_resid_pre", f"blocks.{last}.hook_resid_post"]
    for layer in range(model.n_layers):
        names += [f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out"]
        names += [f"blocks.{layer}.attn.hook_result"] if per_head else []
        names += [f"blocks.{layer}.ln1_post.hook_scale"] if per_head and model.family.ln1_post is not None else []
    logits, cache = model.run_with_cache(inputs, names)
    batch, n_pos = inputs["input_ids"].shape
    rows = torch.arange(batch, device=logits.device)
    answer = torch.as_tensor(answer, device=logits.device).reshape(batch)
    wrong = None if wrong is None else torch.as_tensor(wrong, device=logits.device).reshape(batch)
    if isinstance(positions, str) and positions == "all":
        select = lambda t: t  # noqa: E731 - every position
    else:
        at = last_positions(inputs["attention_mask"]) if isinstance(positions, str) else torch.as_tensor(positions)
        at = at.to(logits.device).reshape(batch)
        select = lambda t: t[rows, at][:, None]  # noqa: E731 - [batch, 1, ...]
    out = readout(model)
    direction = out.W_U[answer].float() - (out.W_U[wrong].float() if wrong is not None else 0)  # [batch, d]
    final = select(cache[names[1]]).float()
    scale = out.frozen_scale(final)  # [batch, pos, 1]
    contributions, labels = [], []
    for label, term in _terms(model, cache, per_head):
        contributions.append((out.center(select(term).float()) / scale * out.gamma * direction[:, None]).sum(-1))
        labels.append(label)
    constant = (out.beta * direction).sum(-1)
    if out.b_U is not None:
        constant = constant + out.b_U[answer].float() - (out.b_U[wrong].float() if wrong is not None else 0)
    contributions.append(constant[:, None].expand_as(contributions[0]))
    labels.append("bias")
    values = torch.stack(contributions, 1)  # [batch, component, pos]
    picked = select(logits.float())
    actual = picked[rows, :, answer] - (picked[rows, :, wrong] if wrong is not None else 0)  # [batch, pos]
    error = float((values.sum(1) - actual).abs().max())
    info = {"prompts": batch, "total": float(actual.mean()), "max_sum_error": error, "per_head": per_head}
    if isinstance(positions, str) and positions == "all":
        pos_labels = position_labels(model, inputs["input_ids"][0])
        return CircuitResult(values.mean(0).cpu(), ("component", "pos"), {"component": labels, "pos": pos_labels},
                             "dla", info)
    return CircuitResult(values[..., 0].mean(0).cpu(), ("component",), {"component": labels}, "dla", info)


def logit_lens(model: HookedModel, tokens, answer: Tensor | None = None, *, attention_mask: Tensor | None = None,
               top: int = 5) -> tuple[CircuitResult, list[list[tuple[str, float]]]]:
    """Read each layer's residual stream through the final norm and unembedding at each prompt's last token.

    Returns the log-probability of `answer` (or of the final prediction) after every layer [layer] (mean
    over prompts), and the first prompt's top tokens with probabilities per layer.
    """
    inputs = model_inputs(model, tokens, attention_mask)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
    logits, cache = model.run_with_cache(inputs, names)
    rows = torch.arange(len(logits), device=logits.device)
    at = last_positions(inputs["attention_mask"]).to(logits.device)
    target = logits[rows, at].argmax(-1) if answer is None else torch.as_tensor(answer, device=logits.device)
    out = readout(model)
    values, tops = [], []
    for name in names:
        log_probs = out.logits(cache[name][rows, at]).float().log_softmax(-1)
        values.append(log_probs[rows, target.reshape(-1)].mean().cpu())
        probs, ids = log_probs[0].exp().topk(top)
        tops.append(list(zip(token_strings(model, ids), probs.tolist())))
    labels = {"layer": [str(i) for i in range(model.n_layers)]}
    info = {"prompts": len(logits), "target": "answer" if answer is not None else "final prediction"}
    return CircuitResult(torch.stack(values), ("layer",), labels, "logit_lens", info), tops
