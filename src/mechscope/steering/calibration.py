"""Calibrating a monitor on labelled prompts: AUROC, the true-positive rate at a low false-positive rate, and a
threshold chosen at a target false-positive rate or at the best Youden index (TPR - FPR).

A prompt scores the monitor's score at one of its tokens ("last", the position a chat model answers from)
or over all of them ("max", "mean"); a score at or above the threshold flags it (positive).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models.chat import chat_inputs
from mechscope.statistics import auroc
from mechscope.steering.directions import contrast
from mechscope.steering.monitors import Monitor, monitored_forward

if TYPE_CHECKING:
    from mechscope.models import HookedModel

REDUCTIONS = ("last", "max", "mean")
RULES = ("fpr", "youden")


@dataclass(frozen=True)
class CalibrationConfig:
    """How prompts are scored and the threshold chosen."""

    reduce: str = "last"  # a prompt's score: "last" token, "max" or "mean" over its tokens
    rule: str = "fpr"  # threshold rule: "fpr" (highest TPR with FPR <= target_fpr) or "youden" (max TPR - FPR)
    target_fpr: float = 0.01  # the false-positive rate the "fpr" rule and the reported TPR allow
    batch_size: int = 32  # prompts per forward pass
    chat: bool = True  # render each prompt as one user turn with the model's chat template

    def __post_init__(self):
        if self.reduce not in REDUCTIONS or self.rule not in RULES or not 0 <= self.target_fpr < 1:
            raise MechscopeError(f"expected reduce in {REDUCTIONS}, rule in {RULES} and 0 <= target_fpr < 1; got "
                                 f"{self.reduce!r}, {self.rule!r} and {self.target_fpr}")


@dataclass(frozen=True)
class Calibration:
    """How well scores separate positives from negatives, and the threshold chosen."""

    auroc: float
    tpr_at_target_fpr: float  # the highest TPR whose FPR is at most target_fpr
    target_fpr: float
    threshold: float
    rule: str
    tpr: float  # at the threshold
    fpr: float  # at the threshold
    n_positive: int
    n_negative: int

    def to_dict(self) -> dict:
        return asdict(self)


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) for every distinct score as the threshold, highest first (flag score >= threshold)."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    if labels.shape != scores.shape or labels.ndim != 1 or labels.all() or not labels.any():
        raise MechscopeError(f"expected 1-D labels and scores of one length with both classes, got shapes "
                             f"{labels.shape} and {scores.shape} with {int(labels.sum())} positive")
    thresholds = np.unique(scores)[::-1]
    flagged = scores[None, :] >= thresholds[:, None]  # [threshold, sample]
    return flagged[:, ~labels].mean(1), flagged[:, labels].mean(1), thresholds


def calibrate(labels: ArrayLike, scores: ArrayLike, config: CalibrationConfig = CalibrationConfig()) -> Calibration:
    """AUROC, TPR at the target FPR and the threshold `config.rule` picks, from labelled scores."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    allowed = np.flatnonzero(fpr <= config.target_fpr)
    best_allowed = allowed[np.argmax(tpr[allowed])] if len(allowed) else None
    chosen = best_allowed if config.rule == "fpr" else int(np.argmax(tpr - fpr))
    if chosen is None:  # even the highest score flags more negatives than allowed: flag nothing
        threshold, at_tpr, at_fpr = float(np.nextafter(thresholds[0], np.inf)), 0.0, 0.0
    else:
        threshold, at_tpr, at_fpr = float(thresholds[chosen]), float(tpr[chosen]), float(fpr[chosen])
    labels = np.asarray(labels, dtype=bool)
    return Calibration(auroc=auroc(labels, scores), tpr_at_target_fpr=0.0 if best_allowed is None else
                       float(tpr[best_allowed]), target_fpr=config.target_fpr, threshold=threshold, rule=config.rule,
                       tpr=at_tpr, fpr=at_fpr, n_positive=int(labels.sum()), n_negative=int((~labels).sum()))


def _batches(model: HookedModel, prompts: list[str] | Tensor, config: CalibrationConfig):
    """Model inputs for `config.batch_size` prompts at a time (chat-rendered and left-padded when config.chat)."""
    for start in range(0, len(prompts), config.batch_size):
        chunk = prompts[start:start + config.batch_size]
        yield chat_inputs(model, list(chunk)) if config.chat else model.encode(chunk)


def prompt_scores(model: HookedModel, monitor: Monitor, prompts: list[str] | Tensor,
                  config: CalibrationConfig = CalibrationConfig()) -> Tensor:
    """One score per prompt [n_prompts]: the monitor's score at its last token, or the max or mean over its tokens.
    Prompts are texts (user turns when config.chat) or token ids [n_prompts, pos]."""
    reduce = {"last": lambda s: s[-1], "max": torch.max, "mean": torch.mean}[config.reduce]
    out = []
    for batch in _batches(model, prompts, config):
        _, record = monitored_forward(model, monitor, batch)
        out += [reduce(scores) for scores in record.scores]
    return torch.stack(out)


def mean_difference(model: HookedModel, hook: str, positives: list[str], negatives: list[str],
                    config: CalibrationConfig = CalibrationConfig()) -> Tensor:
    """Mean activation [d_model] at the last prompt token of `positives` minus that of `negatives` (float64 sums)."""
    layer = model.layer_of(hook)
    pattern = hook.replace(f"blocks.{layer}.", "blocks.{layer}.", 1)
    found = contrast(model, positives, negatives, [layer], pattern, (-1,), config.batch_size, config.chat)
    return found.diff_in_means()[0, 0].float()


def calibrate_monitor(model: HookedModel, monitor: Monitor, positives: list[str], negatives: list[str],
                      config: CalibrationConfig = CalibrationConfig()) -> Calibration:
    """Score labelled prompts with `monitor` and calibrate its threshold (positives should score high)."""
    prompts = list(positives) + list(negatives)
    scores = prompt_scores(model, monitor, prompts, config)
    return calibrate([1] * len(positives) + [0] * len(negatives), scores.numpy(), config)
