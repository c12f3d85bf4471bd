"""`induction`: random tokens with a repeated segment (Olsson et al. 2022).

The only way to predict a repeat is to find the earlier occurrence of the current token and copy what
followed it: a previous-token head in layer 0 and an induction head in layer 1. Segment lengths vary,
so no fixed positional offset works. Segments are split into train and test by a hash of their tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.models import HookedModel
from mechscope.tasks.splits import in_split
from mechscope.toy.tasks.base import CheckResult, Task


@dataclass
class InductionCheck(CheckResult):
    """Induction score of the best layer-1 head and the loss on the first vs the repeated half."""

    induction_score: float  # mean attention from a repeated token to the token after its first occurrence
    best_head: int  # that head's index in layer `induction_layer`
    induction_layer: int
    previous_token_score: float  # best layer-0 head's mean attention to the previous token
    first_half_loss: float
    repeated_half_loss: float

    @property
    def passed(self) -> bool:
        return self.induction_score > 0.5 and self.repeated_half_loss < 0.25 * self.first_half_loss


@dataclass
class InductionTask(Task):
    """Up to `length` random tokens over `n_words` words: a random prefix of up to a quarter of the length,
    then one random segment (1/16 to 1/2 of the rest long) repeated as often as it fits."""

    n_words: int = 128
    length: int = 64
    test_fraction: float = 0.2
    check_segment: int = 25  # the check's prompts: <bos>, a random segment of this length, the same again
    check_prompts: int = 128

    name = "induction"

    def words(self) -> list[str]:
        return [f"w{i}" for i in range(self.n_words)]

    def vocabulary_texts(self) -> list[str]:
        return [" ".join(self.words())]

    def segment(self, rng: random.Random, length: int, split: str) -> list[int]:
        """`length` random word indices whose sequence lies in `split`."""
        while True:
            segment = [rng.randrange(self.n_words) for _ in range(length)]
            if in_split(" ".join(map(str, segment)), split, self.test_fraction):
                return segment

    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        texts = []
        for _ in range(n):
            before = rng.randint(0, self.length // 4)
            period = rng.randint(self.length // 16, (self.length - before) // 2)
            segment = self.segment(rng, period, "train")
            tokens = [rng.randrange(self.n_words) for _ in range(before)] + segment * ((self.length - before) // period)
            texts.append(" ".join(f"w{t}" for t in tokens))
        return texts

    def repeated_tokens(self, tokenizer, n: int | None = None, seed: int = 0) -> Tensor:
        """Held-out check prompts [n, 1 + 2 * check_segment]: <bos>, a test-split segment, the same again."""
        rng = random.Random(f"induction-test-{seed}")
        ids = tokenizer.convert_tokens_to_ids(self.words())
        rows = []
        for _ in range(n or self.check_prompts):
            segment = [ids[t] for t in self.segment(rng, self.check_segment, "test")]
            rows.append([tokenizer.bos_token_id] + segment * 2)
        return torch.tensor(rows)

    def check(self, model: HookedModel, layer: int = 1) -> InductionCheck:
        tokens = self.repeated_tokens(model.tokenizer).to(model.device)
        seg = self.check_segment
        names = ["blocks.0.attn.hook_pattern", f"blocks.{layer}.attn.hook_pattern"]
        logits, cache = model.run_with_cache(tokens, names)
        # the repeated token at position seg + j (j >= 1) attends to position j + 1, after its first copy
        induction = cache[names[1]].diagonal(offset=1 - seg, dim1=-2, dim2=-1)[..., 2:].mean((0, 2))  # [head]
        previous = cache[names[0]].diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), tokens[:, 1:],
                                                   reduction="none").mean(0)  # [pos - 1]
        return InductionCheck(induction_score=float(induction.max()), best_head=int(induction.argmax()),
                              induction_layer=layer, previous_token_score=float(previous.max()),
                              first_half_loss=float(losses[1:seg].mean()),  # predicting tokens 2..seg
                              repeated_half_loss=float(losses[seg + 1:].mean()))  # their second copies
