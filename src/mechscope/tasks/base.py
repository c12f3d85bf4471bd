"""What every prompt task provides: seeded clean/corrupted batches for any tokenizer, and its usual metric."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from mechscope.tasks.batch import PromptPair, TaskBatch, build_batch


class PromptTask(ABC):
    """A circuit/steering task; subclasses are dataclasses whose fields are its settings."""

    name: ClassVar[str]
    metric: ClassVar[str] = "logit_diff"  # the metric this task is usually scored with (a key of METRICS)

    @abstractmethod
    def batch(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> TaskBatch:
        """Up to `n` pairs of `split` that line up on `tokenizer`, the same for the same seed; `batch.report`
        counts the pairs dropped or repaired."""


class TextTask(PromptTask):
    """A task whose pairs are text, tokenised and checked for alignment by `build_batch`."""

    @abstractmethod
    def pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[PromptPair]:
        """Up to `n` pairs from `split`, the same for the same seed; `tokenizer` lets a generator repair them."""

    def batch(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> TaskBatch:
        return build_batch(self.pairs(tokenizer, n, split, seed), tokenizer)
