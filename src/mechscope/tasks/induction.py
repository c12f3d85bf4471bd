"""Induction (Olsson et al. 2022): a random token segment, then its first half again; predict what comes next.

Clean: A B C D ... A B -> C (framed as the tokenizer frames text: after <bos>, inside [CLS] ... [SEP]). Corrupted: a different random segment repeated the same way, so
only an induction circuit tells the two apart: the answer is the clean segment's next token, the
wrong answer the corrupted segment's. Tokens are ids drawn from the tokenizer's vocabulary (special
tokens excepted), so no text is retokenised and every pair lines up; segments are split by a hash.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from mechscope.errors import TaskError
from mechscope.tasks.base import PromptTask
from mechscope.tasks.batch import TaskBatch, TokenPair, collate, pad_id, special_frame
from mechscope.tasks.splits import in_split


@dataclass
class Induction(PromptTask):
    segment_length: int = 20
    repeat_length: int = 10  # tokens of the segment repeated before the prediction
    test_fraction: float = 0.2
    token_pool: tuple[int, ...] | None = None  # ids to draw from; default: every non-special id

    name = "induction"

    def __post_init__(self):
        if not 1 <= self.repeat_length < self.segment_length:
            raise TaskError(f"repeat_length must be in 1..segment_length - 1 = {self.segment_length - 1}, "
                            f"got {self.repeat_length}")

    def pool(self, tokenizer) -> list[int]:
        special = set(tokenizer.all_special_ids)
        pool = list(self.token_pool) if self.token_pool else [i for i in range(len(tokenizer)) if i not in special]
        if len(pool) < self.segment_length:
            raise TaskError(f"induction needs at least segment_length = {self.segment_length} distinct tokens, "
                            f"got {len(pool)}")
        return pool

    def segment(self, rng: random.Random, pool: list[int], split: str) -> list[int]:
        """`segment_length` distinct random ids whose sequence lies in `split`."""
        while True:
            segment = rng.sample(pool, self.segment_length)
            if in_split(" ".join(map(str, segment)), split, self.test_fraction):
                return segment

    def token_pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[TokenPair]:
        rng = random.Random(f"induction-{split}-{seed}")
        pool = self.pool(tokenizer)
        before, after = special_frame(tokenizer)
        k = self.repeat_length
        pairs = []
        while len(pairs) < n:
            clean, corrupted = self.segment(rng, pool, split), self.segment(rng, pool, split)
            if clean[k] == corrupted[k]:
                continue
            pairs.append(TokenPair(tuple(before + clean + clean[:k] + after),
                                   tuple(before + corrupted + corrupted[:k] + after),
                                   len(before) + self.segment_length + k - 1, (clean[k],), (corrupted[k],)))
        return pairs

    def batch(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> TaskBatch:
        return collate(self.token_pairs(tokenizer, n, split, seed), pad_id(tokenizer), n, Counter())
