"""`greater-than` (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> 33..99.

Years are written as two two-digit tokens (century, then YY), as GPT-2 tokenises them. Training
sentences end with a year YY' > YY drawn uniformly; (noun, century, YY) triples are split into train
and test by a stable hash, so the check asks about start years the model never saw with that noun.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mechscope.models import HookedModel
from mechscope.toy.tasks.base import CheckResult, Task, checked_split, final_logits, split_items, token_ids

NOUNS = ("war", "expedition", "drought", "famine", "siege", "voyage", "reign", "journey", "dynasty", "plague",
         "rebellion", "occupation", "crusade", "pilgrimage", "exile", "migration")
TEMPLATE = "The {noun} lasted from the year {century}{yy:02d} to the year {century}"
CENTURIES = tuple(range(11, 20))
YEARS = tuple(f"{yy:02d}" for yy in range(100))


@dataclass(frozen=True)
class GreaterThanPrompt:
    noun: str
    century: int
    yy: int  # the start year within the century: valid answers are yy + 1 .. 99

    @property
    def prompt(self) -> str:
        return TEMPLATE.format(noun=self.noun, century=self.century, yy=self.yy)


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
    def _prompts(self) -> dict[str, list[GreaterThanPrompt]]:
        candidates = [GreaterThanPrompt(noun, century, yy) for noun in NOUNS for century in CENTURIES
                      for yy in range(2, 99)]
        return split_items(candidates, lambda p: p.prompt, self.test_fraction)

    def prompts(self, split: str = "test") -> list[GreaterThanPrompt]:
        """Every (noun, century, YY) of `split`, YY in 02..98 as in Hanna et al."""
        return list(self._prompts[checked_split(split)])

    def vocabulary_texts(self) -> list[str]:
        return [TEMPLATE.format(noun=" ".join(NOUNS), century=11, yy=0), " ".join(YEARS) + " ."]

    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        prompts = self._prompts["train"]
        texts = []
        for _ in range(n):
            p = rng.choice(prompts)
            texts.append(f"{p.prompt}{rng.randint(p.yy + 1, 99):02d} .")
        return texts

    def year_ids(self, tokenizer) -> Tensor:
        """Token ids [100] of "00" .. "99"."""
        return token_ids(tokenizer, list(YEARS))

    def check(self, model: HookedModel) -> GreaterThanCheck:
        prompts = random.Random("greater-than-test").sample(self.prompts("test"), self.check_prompts)
        probs = final_logits(model, [p.prompt for p in prompts]).softmax(-1)[:, self.year_ids(model.tokenizer)]
        yy = torch.tensor([p.yy for p in prompts])[:, None]
        greater = torch.arange(100)[None, :] > yy  # [prompts, 100]
        diff = (probs * greater).sum(1) - (probs * ~greater).sum(1)
        top_valid = greater.gather(1, probs.argmax(1, keepdim=True)).float()
        return GreaterThanCheck(prob_diff=float(diff.mean()), valid_top_year=float(top_valid.mean()),
                                n_prompts=len(prompts))
