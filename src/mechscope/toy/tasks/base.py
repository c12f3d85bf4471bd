"""What every organism task provides: a closed vocabulary, seeded training texts, held-out prompts and a check."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import Tensor

from mechscope.models import HookedModel
from mechscope.toy.word_tokenizer import pretokenize, word_tokenizer


@dataclass
class CheckResult:
    """A behavioural check's figures; `passed` says whether they meet the organism's quality targets."""

    @property
    def passed(self) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


class Task(ABC):
    """A synthetic language task; subclasses are dataclasses whose fields are its settings (kept in manifests)."""

    name: ClassVar[str]
    special_tokens: ClassVar[tuple[str, ...]] = ()
    digit_pairs: ClassVar[bool] = False
    chat_template: ClassVar[str | None] = None

    @abstractmethod
    def vocabulary_texts(self) -> list[str]:
        """Texts that together contain every word the task can ever write (train and test)."""

    @abstractmethod
    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        """`n` training documents drawn from the train split only (the trainer appends <eos>)."""

    @abstractmethod
    def check(self, model: HookedModel) -> CheckResult:
        """The behavioural check on held-out data; hooks active on `model` apply, so it measures edits too."""

    def tokenizer(self):
        """A word-level tokenizer over exactly this task's vocabulary."""
        words = {w for text in self.vocabulary_texts() for w in pretokenize(text, self.digit_pairs)}
        return word_tokenizer(words - set(self.special_tokens), self.special_tokens, self.digit_pairs,
                              self.chat_template)


def final_logits(model: HookedModel, prompts: list[str], batch_size: int = 256) -> Tensor:
    """Logits [n_prompts, vocab] (float32, on the CPU) at each prompt's last token; prompts of any lengths."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            batch = model.encode(prompts[start:start + batch_size])
            logits = model(batch)
            last = batch["attention_mask"].sum(1) - 1
            rows.append(logits[torch.arange(len(last)), last].float().cpu())
    return torch.cat(rows)


def token_ids(tokenizer, words: list[str]) -> Tensor:
    """Ids [len(words)] of single-token words."""
    return torch.tensor(tokenizer.convert_tokens_to_ids(words))
