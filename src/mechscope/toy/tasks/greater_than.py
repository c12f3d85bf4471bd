"""`greater-than` (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> 33..99.

Years are written as two two-digit tokens (century, then YY), as GPT-2 tokenises them. Training
sentences end with a year YY' > YY drawn uniformly; (noun, century, YY) triples are split into train
and test as `mechscope.tasks.GreaterThan` splits them, so the check asks about start years the model
never saw with that noun, scored with the prompt-task protocol (`prob_diff` over the answer sets).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

import torch

from mechscope.models import HookedModel
from mechscope.tasks import GreaterThan, prob_diff
from mechscope.tasks.greater_than import NOUNS, TEMPLATE, YEARS, GreaterThanPrompt
from mechscope.tasks.metrics import gather_set
from mechscope.toy.tasks.base import CheckResult, Task


def _set_max(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    picked, mask = gather_set(logits, ids)
    return picked.masked_fill(~mask, -torch.inf).amax(1)


@dataclass
class GreaterThanCheck(CheckResult):
    """Mean P(YY' > YY) - P(YY' <= YY) over the 100 two-digit tokens, and how often the top year is valid."""

    prob_diff: float
    valid_top_year: float
    n_prompts: int

    @property
    def passed(self) -> bool:
        return self.prob_diff > 0.5 and self.valid_top_year > 0.9


@dataclass
class GreaterThanTask(Task):
    test_fraction: float = 0.2
    check_prompts: int = 500

    name = "greater-than"
    digit_pairs = True

    @cached_property
    def years(self) -> GreaterThan:
        """The greater-than prompt task over the same prompts and splits."""
        return GreaterThan(self.test_fraction)

    def prompts(self, split: str = "test") -> list[GreaterThanPrompt]:
        """Every (noun, century, YY) of `split`, YY in 02..98 as in Hanna et al."""
        return self.years.prompts(split)

    def vocabulary_texts(self) -> list[str]:
        return [TEMPLATE.format(noun=" ".join(NOUNS), century=11, yy=0), " ".join(YEARS) + " ."]

    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        prompts = self.prompts("train")
        texts = []
        for _ in range(n):
            p = rng.choice(prompts)
            texts.append(f"{p.prompt}{rng.randint(p.yy + 1, 99):02d} .")
        return texts

    def check(self, model: HookedModel) -> GreaterThanCheck:
        batch = self.years.batch(model.tokenizer, self.check_prompts)
        logits = batch.logits(model)
        top_is_later = _set_max(logits, batch.answers) > _set_max(logits, batch.wrong)  # argmax over all 100 years
        return GreaterThanCheck(prob_diff=float(prob_diff(logits, batch).mean()),
                                valid_top_year=float(top_is_later.float().mean()), n_prompts=len(batch))
