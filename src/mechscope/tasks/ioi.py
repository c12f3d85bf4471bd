"""IOI, indirect-object identification (Wang et al. 2022), from compositional templates.

"When Mary and John went to the store, John gave a drink to" -> " Mary". A template is an intro clause
naming both people (ABBA or BABA order) and an action clause whose subject repeats one of them; the
answer is the other one, the indirect object (IO), the wrong answer the subject (S). Templates and
unordered name pairs are each split into train and test by a stable hash. Corruptions: "abc" (IO, S1
and S2 replaced by three other names) and "s2_io" (the second subject mention replaced by the IO).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import cached_property

from mechscope.errors import TaskError
from mechscope.tasks.base import TextTask
from mechscope.tasks.batch import PromptPair, single_token
from mechscope.tasks.prose import attach_punctuation
from mechscope.tasks.splits import checked_split, in_split, split_items

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
CORRUPTIONS = ("abc", "s2_io")
NAME_REPAIR = "a name that is not one token was replaced"


@dataclass(frozen=True)
class IOIExample:
    """One sentence: the indirect object `io`, the subject `s` (named twice), ABBA or BABA order."""

    template: str
    io: str
    s: str
    place: str
    obj: str
    abba: bool  # "A and B ..., B gave ... to A": the IO is named first

    def fill(self, s2: str | None = None, names: tuple[str, str] | None = None) -> str:
        """The prompt; `s2` replaces the second subject mention, `names` the two intro names."""
        first, second = names or ((self.io, self.s) if self.abba else (self.s, self.io))
        return self.template.format(A=first, B=second, S=s2 or self.s, PLACE=self.place, OBJECT=self.obj)

    @property
    def prompt(self) -> str:
        return self.fill()

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.io} ."


@dataclass
class IOI(TextTask):
    test_fraction: float = 0.2
    corruption: str = "abc"
    repair: bool = True  # replace names that are not one token by ones that are (else such pairs are dropped)

    name = "ioi"

    def __post_init__(self):
        if self.corruption not in CORRUPTIONS:
            raise TaskError(f"IOI corruption must be one of {CORRUPTIONS}, got {self.corruption!r}")

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

    def usable_names(self, tokenizer) -> list[str]:
        """Names that are one token after " to" on `tokenizer` (all of them when not repairing)."""
        names = [n for n in NAMES if single_token(tokenizer, " to", f" {n}") is not None] if self.repair else NAMES
        if len(names) < 5:
            raise TaskError(f"IOI needs at least 5 names that are one token each; this tokenizer has {len(names)}")
        return list(names)

    def pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[PromptPair]:
        rng = random.Random(f"ioi-corrupt-{split}-{seed}")
        names = self.usable_names(tokenizer)
        pairs = []
        for ex in self.examples(n, split, seed):
            repairs = ()
            if ex.io not in names or ex.s not in names:
                io, s = rng.sample([name for name in names if name not in (ex.io, ex.s)], 2)
                ex, repairs = replace(ex, io=io, s=s), (NAME_REPAIR,)
            if self.corruption == "abc":
                a, b, s2 = rng.sample([name for name in names if name not in (ex.io, ex.s)], 3)
                corrupted, swapped = ex.fill(s2, (a, b)), (a, b, s2)
            else:
                corrupted, swapped = ex.fill(ex.io), (ex.io,)
            meta = {"template": ex.template, "io": ex.io, "s": ex.s, "place": ex.place, "obj": ex.obj, "abba": ex.abba,
                    "corrupted_names": swapped}
            pairs.append(PromptPair(attach_punctuation(ex.prompt), attach_punctuation(corrupted), (f" {ex.io}",),
                                    (f" {ex.s}",), meta, repairs))
        return pairs
