"""Logit targets of an attribution graph: the likeliest next tokens, or tokens and directions the user names.

A target's vector is what its backward pass injects at the final norm's output; for tokens it is the demeaned
unembedding column, W_U[t] - mean_v W_U[v], so the target is the logit minus the mean logit (as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.circuits.graphs.replacement import GraphError


@dataclass
class LogitTargets:
    tokens: Tensor  # [n] vocabulary ids (-1 for a direction)
    labels: list[str]
    probabilities: Tensor  # [n] next-token probability (a direction's weight: 1 / n)
    vectors: Tensor  # [n, d_model] injected at the final norm's output, last position

    def __len__(self) -> int:
        return len(self.tokens)


def _unembedding(model) -> Tensor:
    head = model.hf.get_output_embeddings()
    if head is None:
        raise GraphError(f"{model.info.name} has no unembedding; attribution graphs need a language model head")
    return head.weight.detach().float()  # [vocab, d_model]


def salient_logits(model, logits: Tensor, max_logits: int = 10, probability: float = 0.95) -> LogitTargets:
    """The fewest top tokens (at most max_logits) whose cumulative probability reaches `probability`."""
    probs = logits.float().softmax(-1)
    top_p, top_ids = probs.topk(min(max_logits, probs.numel()))
    keep = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(probability))) + 1
    return token_targets(model, top_ids[:keep], probs)


def token_targets(model, token_ids: Tensor, probs: Tensor) -> LogitTargets:
    """Targets for the given token ids, weighted by their probabilities in `probs` [vocab]."""
    w_u = _unembedding(model)
    ids = torch.as_tensor(token_ids).reshape(-1)
    labels = model.to_str_tokens(ids) if model.tokenizer is not None else [str(t) for t in ids.tolist()]
    return LogitTargets(ids, labels, probs[ids].float(), w_u[ids] - w_u.mean(0))


def named_targets(model, texts: list[str], probs: Tensor) -> LogitTargets:
    """Targets for next tokens given as text; each must be exactly one token."""
    ids = []
    for text in texts:
        encoded = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise GraphError(f"target {text!r} is {len(encoded)} tokens ({encoded}); name a single token")
        ids.append(encoded[0])
    return token_targets(model, torch.tensor(ids), probs)


def direction_target(direction: Tensor, label: str = "direction") -> LogitTargets:
    """One target that reads `direction` [d_model] off the final norm's output."""
    return LogitTargets(torch.tensor([-1]), [label], torch.ones(1), direction.detach().float()[None])
