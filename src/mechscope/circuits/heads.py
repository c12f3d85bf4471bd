"""Head detectors with TransformerLens's definitions (`detect_head`, error measure "mul").

A head's score for a detection pattern D is the share of its attention that falls where D is 1:
sum(A * D) / sum(A) over query and key positions of one sequence, averaged over sequences.
D is: previous-token (key = query - 1); duplicate-token (keys holding the query's token, earlier);
induction (keys right after an earlier copy of the query's token). Every head is scored in one pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.results import CircuitResult
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

HEAD_KINDS = ("previous_token", "duplicate_token", "induction")


def detection_pattern(kind: str, tokens: Tensor) -> Tensor:
    """The 0/1 pattern [batch, query, key] a perfect head of `kind` would attend with, for tokens [batch, pos]."""
    n = tokens.shape[-1]
    if kind == "previous_token":
        return torch.diag_embed(torch.ones(n - 1), offset=-1).expand(len(tokens), n, n).clone()
    duplicate = (tokens[:, :, None] == tokens[:, None, :]).float().tril(-1)
    if kind == "duplicate_token":
        return duplicate
    if kind == "induction":
        shifted = torch.zeros_like(duplicate)
        shifted[:, :, 1:] = duplicate[:, :, :-1]
        return shifted.tril()
    raise MechscopeError(f"unknown head kind {kind!r}; expected one of {', '.join(HEAD_KINDS)}")


def repeated_tokens(model: HookedModel, batch: int = 8, length: int = 25, seed: int = 0) -> Tensor:
    """[batch, 1 + 2 * length]: BOS (where the tokenizer has one), random ordinary tokens, the same again."""
    tokenizer = model.tokenizer
    special = set(tokenizer.all_special_ids) if tokenizer is not None else set()
    vocab = torch.tensor([i for i in range(model.info.d_vocab) if i not in special])
    g = torch.Generator().manual_seed(seed)
    segment = vocab[torch.randint(len(vocab), (batch, length), generator=g)]
    rows = torch.cat([segment, segment], 1)
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    if bos is not None:
        rows = torch.cat([torch.full((batch, 1), bos), rows], 1)
    return rows


def head_scores(model: HookedModel, tokens: Tensor | None = None, kinds: tuple[str, ...] = HEAD_KINDS, *,
                exclude_bos: bool = False, exclude_current_token: bool = False) -> dict[str, CircuitResult]:
    """Scores [layer, head] of every head for each kind, on `tokens` [batch, pos] (default: repeated random tokens)."""
    tokens = repeated_tokens(model) if tokens is None else torch.as_tensor(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise MechscopeError(f"head_scores needs unpadded token ids [batch, pos >= 2], got shape {tuple(tokens.shape)}")
    patterns = {kind: detection_pattern(kind, tokens.cpu())[:, None].to(model.device) for kind in kinds}
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.n_layers)]
    scores = {kind: [] for kind in kinds}
    _, cache = model.run_with_cache(tokens.to(model.device), names)
    for name in names:
        attention = cache.pop(name).float()  # [batch, head, query, key]
        if exclude_bos:
            attention[..., 0] = 0
        if exclude_current_token:
            attention = attention * (1 - torch.eye(attention.shape[-1], device=attention.device))
        total = attention.sum((-1, -2))
        for kind in kinds:
            scores[kind].append(((attention * patterns[kind]).sum((-1, -2)) / total).mean(0).cpu())
    labels = {"layer": [str(i) for i in range(model.n_layers)], "head": [str(i) for i in range(model.info.n_heads)]}
    info = {"prompts": len(tokens), "positions": tokens.shape[1], "exclude_bos": exclude_bos,
            "exclude_current_token": exclude_current_token}
    return {kind: CircuitResult(torch.stack(scores[kind]), ("layer", "head"), labels, "head_scores",
                                {**info, "head_kind": kind}) for kind in kinds}
