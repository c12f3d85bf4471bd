"""Greater-than (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> 33..99.

The answers are the two-digit years above the start year, the wrong answers those at or below it; the
corruption starts in year "01" (Hanna et al.'s 01-corruption), where every YY is valid. Tokenizers that
write years digit by digit (Llama's, SmolLM2's) have no two-digit year tokens: every pair is dropped.
(noun, century, YY) triples are split into train and test by a stable hash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from mechscope.tasks.base import TextTask
from mechscope.tasks.batch import PromptPair
from mechscope.tasks.splits import checked_split, split_items

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

    def pair(self) -> PromptPair:
        """This prompt against its 01-corruption; answers YY' > YY, wrong answers YY' <= YY."""
        corrupted = TEMPLATE.format(noun=self.noun, century=self.century, yy=1)
        return PromptPair(self.prompt, corrupted, YEARS[self.yy + 1:], YEARS[:self.yy + 1],
                          {"noun": self.noun, "century": self.century, "yy": self.yy})


@dataclass
class GreaterThan(TextTask):
    test_fraction: float = 0.2

    name = "greater-than"
    metric = "prob_diff"

    @cached_property
    def _prompts(self) -> dict[str, list[GreaterThanPrompt]]:
        candidates = [GreaterThanPrompt(noun, century, yy) for noun in NOUNS for century in CENTURIES
                      for yy in range(2, 99)]
        return split_items(candidates, lambda p: p.prompt, self.test_fraction)

    def prompts(self, split: str = "test") -> list[GreaterThanPrompt]:
        """Every (noun, century, YY) of `split`, YY in 02..98 as in Hanna et al."""
        return list(self._prompts[checked_split(split)])

    def pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[PromptPair]:
        prompts = self.prompts(split)
        chosen = random.Random(f"greater-than-{split}-{seed}").sample(prompts, min(n, len(prompts)))
        return [prompt.pair() for prompt in chosen]
