"""Choosing a condition's threshold: the grid search of CAST (Lee et al. 2024, "Programming refusal with
conditional activation steering"), which picks the threshold and comparison that best separate prompts the
behaviour should apply to from the others (F1), on the same per-prompt score the condition tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.errors import SteeringError
from mechscope.models.positions import current
from mechscope.steering.directions import prompt_inputs
from mechscope.steering.interventions import Condition, prompt_mean
from mechscope.steering.targets import Direction, Latent


def condition_scores(model, hook: str, target: Direction | Latent, prompts: Sequence[str], per: str = "prompt",
                     batch_size: int = 32, chat: bool = True) -> Tensor:
    """Each prompt's score [n_prompts] (float32): its mean coordinate over its tokens (what Condition(per="prompt")
    tests), or with per="last" or "token" the coordinate at its last token, where a chat model decides how to
    answer."""
    scores = []

    def record(act: Tensor, name: str) -> None:
        coordinate = target.coordinate(act, name).float()
        score = prompt_mean(coordinate, current().is_prompt.to(act.device)) if per == "prompt" else coordinate[:, -1]
        scores.append(score.cpu())
    with model.hooks([(hook, record)]), torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            model(prompt_inputs(model, prompts[start:start + batch_size], chat))
    return torch.cat(scores)


def _f1(predicted: Tensor, truth: Tensor) -> float:
    hits = float((predicted & truth).sum())
    return 0.0 if hits == 0 else 2 * hits / float(predicted.sum() + truth.sum())


@dataclass
class ThresholdSearch:
    """The chosen threshold and comparison, its F1, and the F1 of every grid point."""

    threshold: float
    above: bool
    f1: float
    grid: list[dict] = field(repr=False)
    per: str = "prompt"

    def condition(self, hook: str, target: Direction | Latent) -> Condition:
        return Condition(hook, target, self.threshold, self.above, self.per)


def search_threshold(model, hook: str, target: Direction | Latent, apply_to: Sequence[str], leave: Sequence[str],
                     per: str = "prompt", n_grid: int = 64, batch_size: int = 32, chat: bool = True) -> ThresholdSearch:
    """Grid search over thresholds (evenly spaced over the observed scores) and both comparisons for the condition
    that fires on `apply_to` prompts and not on `leave` ones, by F1; among equal scores, the middle threshold."""
    if not apply_to or not leave:
        raise SteeringError("the threshold search needs prompts on both sides: some to apply the behaviour to and "
                            "some to leave alone")
    positive = condition_scores(model, hook, target, apply_to, per, batch_size, chat)
    negative = condition_scores(model, hook, target, leave, per, batch_size, chat)
    scores = torch.cat([positive, negative])
    truth = torch.cat([torch.ones(len(positive), dtype=torch.bool), torch.zeros(len(negative), dtype=torch.bool)])
    grid = []
    for threshold in torch.linspace(float(scores.min()), float(scores.max()), n_grid).tolist():
        for above in (True, False):
            fired = scores > threshold if above else scores < threshold
            grid.append({"threshold": threshold, "above": above, "f1": _f1(fired, truth)})
    top = max(point["f1"] for point in grid)
    best = max(grid, key=lambda point: point["f1"])  # ties: the middle of the best run keeps the widest margin
    tied = [point for point in grid if point["f1"] == top and point["above"] == best["above"]]
    best = tied[len(tied) // 2]
    return ThresholdSearch(best["threshold"], best["above"], best["f1"], grid, per)
