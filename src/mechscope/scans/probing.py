"""Probing a concept family: prompt activations at one hook, pooled per prompt, and a linear probe fitted on the
train split and scored on the held-out split."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mechscope.statistics import auroc
from mechscope.steering.directions import fit_probe, prompt_inputs

@torch.no_grad()
def pooled_activations(model, prompts: list[str], hook: str, pooling: str = "mean", batch_size: int = 16) -> Tensor:
    """Activations [n_prompts, d] at `hook`, each prompt's mean over its own tokens (padding and special tokens
    excluded) or its last token."""
    special = torch.tensor(sorted(set(model.tokenizer.all_special_ids)), dtype=torch.long)
    pooled = []
    for start in range(0, len(prompts), batch_size):
        inputs = prompt_inputs(model, prompts[start:start + batch_size], chat=False)
        _, cache = model.run_with_cache(inputs, names=[hook], stop_at_layer="auto")
        acts = cache[hook].flatten(2).float()  # [batch, pos, d]
        if pooling == "mean":
            keep = (inputs["attention_mask"].bool() & ~torch.isin(inputs["input_ids"], special)).to(acts.device)
            pooled.append(((acts * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)).cpu())
        else:  # left-padded: the last position is every row's last token
            pooled.append(acts[:, -1].cpu())
    return torch.cat(pooled)


def probe_scores(train_positive: Tensor, train_negative: Tensor, test: Tensor, method: str = "logistic") -> Tensor:
    """Scores [n_test] of a linear probe fitted on the train activations [n, d]: logistic regression
    (steering.directions.fit_probe) or the difference of the train means, both on features standardised by
    the train set (a few outlier dimensions would otherwise decide the raw difference of means)."""
    if method == "logistic":
        probe = fit_probe(train_positive, train_negative)
        return test.double() @ probe.weight + probe.bias
    train = torch.cat([train_positive, train_negative]).double()
    mean, scale = train.mean(0), train.std(0).clamp(min=1e-8)
    gap = (train_positive.double().mean(0) - train_negative.double().mean(0)) / scale
    return ((test.double() - mean) / scale) @ gap


def held_out_auroc(positive: Tensor | np.ndarray, negative: Tensor | np.ndarray) -> float:
    """AUROC of scores of held-out positive against held-out negative prompts."""
    positive, negative = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    return auroc(np.r_[np.ones(len(positive)), np.zeros(len(negative))], np.r_[positive, negative])
