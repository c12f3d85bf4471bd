"""`ioi`: indirect-object identification (Wang et al. 2022), trained on `mechscope.tasks.IOI`'s templates.

"When Mary and John went to the store , John gave a drink to" -> "Mary". Templates (intro x action)
and unordered name pairs are each split into train and test by a stable hash (see `mechscope.tasks.ioi`),
so the check runs on sentences whose template and name pair the model never saw. Patching batches and
the check use the prompt-task protocol (`TaskBatch`, `logit_diff`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from mechscope.models import HookedModel
from mechscope.tasks import IOI, TaskBatch, accuracy, logit_diff
from mechscope.tasks.ioi import NAMES, OBJECTS, PLACES, TEMPLATES, IOIExample
from mechscope.toy.tasks.base import CheckResult, Task


@dataclass
class IOICheck(CheckResult):
    """Top-1 accuracy (IO is the argmax) and mean logit(IO) - logit(S) on held-out templates and names."""

    accuracy: float
    logit_diff: float
    n_prompts: int

    @property
    def passed(self) -> bool:
        return self.accuracy > 0.9 and self.logit_diff > 2


@dataclass
class IOITask(Task):
    test_fraction: float = 0.2
    check_prompts: int = 500

    name = "ioi"

    @cached_property
    def prompts(self) -> IOI:
        """The IOI prompt task over the same templates, names and splits (ABC corruption)."""
        return IOI(self.test_fraction)

    def templates(self, split: str = "test") -> list[str]:
        return self.prompts.templates(split)

    def example(self, rng: random.Random, split: str = "train") -> IOIExample:
        return self.prompts.example(rng, split)

    def examples(self, n: int, split: str = "test", seed: int = 0) -> list[IOIExample]:
        return self.prompts.examples(n, split, seed)

    def vocabulary_texts(self) -> list[str]:
        frames = [t.format(A="", B="", S="", PLACE="", OBJECT="") for t in TEMPLATES]
        return frames + [" ".join(NAMES + PLACES + OBJECTS + (".",))]

    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        return [self.example(rng).text for _ in range(n)]

    def patching_batch(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0,
                       corruption: str = "abc") -> TaskBatch:
        """Clean IOI prompts and their corruptions ("abc": IO, S1 and S2 replaced by three other names; "s2_io")."""
        return IOI(self.test_fraction, corruption).batch(tokenizer, n, split, seed)

    def check(self, model: HookedModel) -> IOICheck:
        batch = self.patching_batch(model.tokenizer, self.check_prompts)
        logits = batch.logits(model)
        return IOICheck(accuracy=float(accuracy(logits, batch).mean()),
                        logit_diff=float(logit_diff(logits, batch).mean()), n_prompts=len(batch))
