"""Metrics over a `TaskBatch`, one value per row: logit difference, its normalised form, probability difference
and KL to the clean run. Logits may be [batch, vocab] at the answer positions or [batch, pos, vocab]."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mechscope.errors import TaskError
from mechscope.tasks.batch import TaskBatch


def _final(logits: Tensor, batch: TaskBatch) -> Tensor:
    return (batch.at_positions(logits) if logits.ndim == 3 else logits).float()


def gather_set(values: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """`values` [batch, vocab] at each row's ids [batch, k] (-1 pads), with the mask of real ids [batch, k]."""
    mask = ids >= 0
    return values.gather(1, ids.clamp(min=0).to(values.device)), mask.to(values.device)


def set_mean(values: Tensor, ids: Tensor) -> Tensor:
    """Mean of `values` [batch, vocab] over each row's ids: the logit of a single answer, the mean over a set."""
    picked, mask = gather_set(values, ids)
    return (picked * mask).sum(1) / mask.sum(1)


def logit_diff(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Mean logit of the answers minus mean logit of the wrong answers, [batch] (Wang et al. 2022)."""
    final = _final(logits, batch)
    return set_mean(final, batch.answers) - set_mean(final, batch.wrong)


def prob_diff(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Total probability of the answers minus that of the wrong answers, [batch] (Hanna et al. 2023)."""
    probs = _final(logits, batch).softmax(-1)
    answers, answer_mask = gather_set(probs, batch.answers)
    wrong, wrong_mask = gather_set(probs, batch.wrong)
    return (answers * answer_mask).sum(1) - (wrong * wrong_mask).sum(1)


def normalized_logit_diff(logits: Tensor, batch: TaskBatch, clean_logits: Tensor, corrupted_logits: Tensor) -> Tensor:
    """Logit difference rescaled so the mean clean run scores 1 and the mean corrupted run 0, [batch]."""
    clean = logit_diff(clean_logits, batch).mean()
    corrupted = logit_diff(corrupted_logits, batch).mean()
    return (logit_diff(logits, batch) - corrupted) / (clean - corrupted)


def kl_to_clean(logits: Tensor, batch: TaskBatch, clean_logits: Tensor) -> Tensor:
    """KL(clean || run) of the next-token distributions at the answer positions, [batch], in nats."""
    clean = _final(clean_logits, batch).log_softmax(-1)
    run = _final(logits, batch).log_softmax(-1)
    probs = clean.exp()
    return torch.where(probs > 0, probs * (clean - run), 0.0).sum(-1)  # tokens the clean run rules out add 0


METRICS: dict[str, Callable[..., Tensor]] = {"logit_diff": logit_diff, "normalized_logit_diff": normalized_logit_diff,
                                             "prob_diff": prob_diff, "kl_to_clean": kl_to_clean}


def metric(name: str) -> Callable[..., Tensor]:
    """The metric called `name`, or an error listing them."""
    if name not in METRICS:
        raise TaskError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return METRICS[name]


def clean_and_corrupted(model, batch: TaskBatch) -> tuple[Tensor, Tensor]:
    """`model`'s logits [batch, vocab] at the answer positions on the clean and on the corrupted prompts."""
    return batch.logits(model), batch.logits(model, corrupted=True)


def accuracy(logits: Tensor, batch: TaskBatch) -> Tensor:
    """1.0 where the top token is an answer, [batch]."""
    top = _final(logits, batch).argmax(-1, keepdim=True)
    return (batch.answers.to(top.device) == top).any(1).float()

