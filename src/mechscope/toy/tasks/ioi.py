"""`ioi`: indirect-object identification (Wang et al. 2022) from compositional templates.

"When Mary and John went to the store , John gave a drink to" -> "Mary". A template is an intro
clause naming both people (in ABBA or BABA order) and an action clause whose subject repeats one of
them; the answer is the other one, the indirect object. Templates (intro x action) and unordered
name pairs are each split into train and test by a stable hash, so the check runs on sentences whose
template and name pair the model never saw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mechscope.models import HookedModel
from mechscope.toy.tasks.base import CheckResult, Task, checked_split, final_logits, in_split, split_items, token_ids

NAMES = ("Mary", "John", "Alice", "Bob", "Sarah", "James", "Emma", "David", "Laura", "Michael", "Anna", "Tom",
         "Julia", "Paul", "Kate", "Mark", "Lucy", "Peter", "Rose", "Daniel", "Claire", "Sam", "Helen", "Jack",
         "Grace", "Adam", "Ruth", "Oscar", "Nina", "Victor", "Olga", "Henry", "Ivy", "Leo", "Maya", "Eric")
PLACES = ("store", "park", "garden", "school", "office", "station", "beach", "library", "restaurant", "hospital",
          "market", "cafe")
OBJECTS = ("drink", "book", "ball", "letter", "ring", "bottle", "basket", "key", "necklace", "bag", "kite",
           "snack")
INTROS = ("When {A} and {B} went to the {PLACE} ,", "After {A} and {B} arrived at the {PLACE} ,",
          "While {A} and {B} were working at the {PLACE} ,", "Then , {A} and {B} had a long argument at the {PLACE} .",
          "Friends {A} and {B} found a {OBJECT} at the {PLACE} .", "Once {A} and {B} got to the {PLACE} ,",
          "So {A} and {B} decided to go to the {PLACE} .", "Since {A} and {B} were bored at the {PLACE} ,")
ACTIONS = ("{S} gave a {OBJECT} to", "{S} handed the {OBJECT} to", "{S} passed the {OBJECT} to",
           "{S} threw the {OBJECT} to", "{S} sent a {OBJECT} to", "{S} showed the {OBJECT} to",
           "{S} decided to give a {OBJECT} to", "{S} brought the {OBJECT} back to")
TEMPLATES = tuple(f"{intro} {action}" for intro in INTROS for action in ACTIONS)


@dataclass(frozen=True)
class IOIExample:
    """One sentence: the indirect object `io`, the subject `s` (named twice), ABBA or BABA order."""

    template: str
    io: str
    s: str
    place: str
    obj: str
    abba: bool  # "A and B ..., B gave ... to A": the IO is named first

    @property
    def prompt(self) -> str:
        first, second = (self.io, self.s) if self.abba else (self.s, self.io)
        return self.template.format(A=first, B=second, S=self.s, PLACE=self.place, OBJECT=self.obj)

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.io} ."


@dataclass
class IOIBatch:
    """Clean and corrupted prompts for patching: same templates, token for token; answers at `answer_pos`."""

    clean: Tensor  # [batch, pos]
    corrupted: Tensor  # [batch, pos] the same sentences with three unrelated names (the "ABC" corruption)
    attention_mask: Tensor  # [batch, pos]
    answer_pos: Tensor  # [batch] position of each prompt's last token
    correct: Tensor  # [batch] token id of the indirect object
    incorrect: Tensor  # [batch] token id of the subject


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
    def _templates(self) -> dict[str, list[str]]:
        return split_items(TEMPLATES, str, self.test_fraction)

    def templates(self, split: str = "test") -> list[str]:
        return list(self._templates[checked_split(split)])

    def example(self, rng: random.Random, split: str = "train") -> IOIExample:
        """A random sentence whose template and unordered name pair both lie in `split`."""
        while True:
            io, s = rng.sample(NAMES, 2)
            if in_split(" ".join(sorted((io, s))), split, self.test_fraction):
                break
        return IOIExample(rng.choice(self._templates[split]), io, s, rng.choice(PLACES), rng.choice(OBJECTS),
                          rng.random() < 0.5)

    def examples(self, n: int, split: str = "test", seed: int = 0) -> list[IOIExample]:
        rng = random.Random(f"ioi-{split}-{seed}")
        return [self.example(rng, split) for _ in range(n)]

    def vocabulary_texts(self) -> list[str]:
        frames = [t.format(A="", B="", S="", PLACE="", OBJECT="") for t in TEMPLATES]
        return frames + [" ".join(NAMES + PLACES + OBJECTS + (".",))]

    def train_texts(self, rng: random.Random, n: int) -> list[str]:
        return [self.example(rng).text for _ in range(n)]

    def patching_batch(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> IOIBatch:
        """Clean IOI prompts and their ABC corruptions (IO, S1 and S2 replaced by three other names)."""
        rng = random.Random(f"ioi-corrupt-{split}-{seed}")
        clean = self.examples(n, split, seed)
        corrupted = []
        for ex in clean:
            a, b, s = rng.sample([name for name in NAMES if name not in (ex.io, ex.s)], 3)
            corrupted.append(ex.template.format(A=a, B=b, S=s, PLACE=ex.place, OBJECT=ex.obj))
        clean_batch = tokenizer([ex.prompt for ex in clean], return_tensors="pt", padding=True)
        corrupted_ids = tokenizer(corrupted, return_tensors="pt", padding=True)["input_ids"]
        return IOIBatch(clean_batch["input_ids"], corrupted_ids, clean_batch["attention_mask"],
                        clean_batch["attention_mask"].sum(1) - 1, token_ids(tokenizer, [ex.io for ex in clean]),
                        token_ids(tokenizer, [ex.s for ex in clean]))

    def check(self, model: HookedModel) -> IOICheck:
        examples = self.examples(self.check_prompts)
        logits = final_logits(model, [ex.prompt for ex in examples])
        io = token_ids(model.tokenizer, [ex.io for ex in examples])
        s = token_ids(model.tokenizer, [ex.s for ex in examples])
        rows = torch.arange(len(examples))
        return IOICheck(accuracy=float((logits.argmax(-1) == io).float().mean()),
                        logit_diff=float((logits[rows, io] - logits[rows, s]).mean()), n_prompts=len(examples))
