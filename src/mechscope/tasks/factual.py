"""Factual recall: "The Eiffel Tower is in the city of" -> " Paris", corrupted by another subject of the same
relation ("The Colosseum is in the city of" -> " Rome", the wrong answer).

A small hand-written fact set; each fact is paired with a counterfactual subject whose prompt has the same
token count on the tokenizer at hand (a repair when the first choice did not). Facts are split into train
and test by a stable hash of the prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from mechscope.tasks.base import TextTask
from mechscope.tasks.batch import PromptPair, equal_length_partner
from mechscope.tasks.splits import checked_split, split_items

RELATIONS = {
    "The {} is in the city of": (("Eiffel Tower", "Paris"), ("Colosseum", "Rome"), ("Big Ben", "London"),
                                 ("Brandenburg Gate", "Berlin"), ("Acropolis", "Athens"), ("Kremlin", "Moscow"),
                                 ("Forbidden City", "Beijing"), ("Sagrada Familia", "Barcelona"),
                                 ("Space Needle", "Seattle"), ("Taj Mahal", "Agra"), ("Golden Gate Bridge", "San Francisco")),
    "The capital of {} is": (("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
                             ("Japan", "Tokyo"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"),
                             ("Greece", "Athens"), ("Poland", "Warsaw"), ("Kenya", "Nairobi"), ("Peru", "Lima")),
    "Most people in {} speak": (("France", "French"), ("Germany", "German"), ("Spain", "Spanish"),
                                ("Italy", "Italian"), ("Japan", "Japanese"), ("Russia", "Russian"),
                                ("Portugal", "Portuguese"), ("Greece", "Greek"), ("China", "Chinese"),
                                ("Poland", "Polish"), ("Turkey", "Turkish"), ("Sweden", "Swedish")),
}
PARTNER_REPAIR = "counterfactual subject swapped for one of the same token count"


@dataclass(frozen=True)
class Fact:
    relation: str  # a template with one {} for the subject
    subject: str
    answer: str

    @property
    def prompt(self) -> str:
        return self.relation.format(self.subject)


@dataclass
class FactualRecall(TextTask):
    test_fraction: float = 0.2

    name = "factual"

    @cached_property
    def _facts(self) -> dict[str, list[Fact]]:
        facts = [Fact(relation, subject, answer) for relation, known in RELATIONS.items() for subject, answer in known]
        return split_items(facts, lambda fact: fact.prompt, self.test_fraction)

    def facts(self, split: str = "test") -> list[Fact]:
        return list(self._facts[checked_split(split)])

    def pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[PromptPair]:
        """Up to `n` facts of `split`, each against a counterfactual subject of the same relation (from any split:
        only the clean fact is scored as known)."""
        rng = random.Random(f"factual-{split}-{seed}")
        facts = self.facts(split)
        every = self._facts["train"] + self._facts["test"]
        pairs = []
        for fact in rng.sample(facts, min(n, len(facts))):
            others = [o for o in every if o.relation == fact.relation and o.answer != fact.answer]
            others = rng.sample(others, len(others))
            index = equal_length_partner(tokenizer, fact.prompt, [o.prompt for o in others])
            other = others[index]
            pairs.append(PromptPair(fact.prompt, other.prompt, (f" {fact.answer}",), (f" {other.answer}",),
                                    {"relation": fact.relation, "subject": fact.subject, "other": other.subject},
                                    (PARTNER_REPAIR,) if index else ()))
        return pairs
