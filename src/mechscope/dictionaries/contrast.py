"""Latents that separate two prompt sets: each prompt's maximum activation of every latent over its tokens, then
per-latent AUROC (Mann-Whitney U, ties halved) and difference of means. What `/v1/features/contrast`, jailbreak
fingerprints and family scans rank latents by."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from mechscope.errors import MechscopeError


@torch.no_grad()
def max_codes(model, bound, prompts: Sequence[str], batch_size: int = 8, chat: bool = False) -> np.ndarray:
    """Each prompt's largest activation of every latent of `bound` over its real tokens [n_prompts, d_sae]; `chat`
    wraps prompts in the model's chat template (where it has one) as steering and monitors read them."""
    from mechscope.models.chat import chat_inputs

    if not prompts:
        raise MechscopeError("expected at least one prompt to read latents on, got none")
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        templated = chat and getattr(model.tokenizer, "chat_template", None) is not None
        batch = chat_inputs(model, chunk) if templated else model.encode(chunk)
        _, cache = model.run_with_cache(batch, [bound.hook], stop_at_layer="auto")
        codes = bound.dictionary.encode(cache[bound.hook].to(bound.dictionary.W_enc.dtype))
        real = batch["attention_mask"].bool()[..., None].to(codes.device)
        rows.append(codes.masked_fill(~real, float("-inf")).amax(1).float().cpu().numpy())
    return np.concatenate(rows)


def auroc_columns(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """AUROC of every column for telling positive rows from negative ones (Mann-Whitney U, ties halved)."""
    ranks = rankdata(np.concatenate([positive, negative]), axis=0)
    n_pos, n_neg = len(positive), len(negative)
    return (ranks[:n_pos].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def rank_latents(positive: np.ndarray, negative: np.ndarray, top: int = 10) -> dict[str, list[dict]]:
    """The `top` latents most active on the positive side and on the negative side, by AUROC then by the
    difference of means, each with its means, difference and AUROC."""
    difference = positive.mean(0) - negative.mean(0)
    separation = auroc_columns(positive, negative)

    def entries(order: np.ndarray) -> list[dict]:
        return [{"latent": int(i), "mean_positive": float(positive[:, i].mean()),
                 "mean_negative": float(negative[:, i].mean()), "difference": float(difference[i]),
                 "auroc": float(separation[i])} for i in order[:top]]
    return {"positive": entries(np.lexsort((-difference, -separation))),
            "negative": entries(np.lexsort((difference, separation)))}
