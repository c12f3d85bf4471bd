"""Questions a model may know or only seem to: the factual-recall facts (and more capitals) mixed with invented
entities, for a hallucination/uncertainty probe whose labels come from the model's own answers.

A known fact's answer is checked against the truth; an invented entity ("The capital of Veltravia is") has no
true answer, so any answer the model gives to it is a hallucination. Items are split by a stable hash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mechscope.tasks.factual import RELATIONS
from mechscope.tasks.splits import checked_split, held_out

CAPITALS = "The capital of {} is"
MORE_CAPITALS = (("Austria", "Vienna"), ("Belgium", "Brussels"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
                 ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Ireland", "Dublin"), ("Portugal", "Lisbon"),
                 ("Hungary", "Budapest"), ("Czechia", "Prague"), ("Turkey", "Ankara"), ("China", "Beijing"),
                 ("India", "New Delhi"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"),
                 ("Indonesia", "Jakarta"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"),
                 ("Mexico", "Mexico City"), ("Argentina", "Buenos Aires"), ("Chile", "Santiago"),
                 ("Colombia", "Bogota"), ("Cuba", "Havana"), ("Australia", "Canberra"), ("Nigeria", "Abuja"),
                 ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"), ("Ukraine", "Kyiv"), ("Romania", "Bucharest"),
                 ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"), ("Iceland", "Reykjavik"),
                 ("Philippines", "Manila"), ("Malaysia", "Kuala Lumpur"), ("Pakistan", "Islamabad"),
                 ("Venezuela", "Caracas"), ("Ghana", "Accra"))
INVENTED = {
    CAPITALS: ("Veltravia", "Quorsland", "Mardovia", "Zenthara", "Brelkistan", "Ostavania", "Talmuria",
               "Frindoria", "Kelvaria", "Draventia", "Solmarra", "Yrrland", "Pexonia", "Gulvaria", "Ternassia",
               "Whistovia", "Carradonia", "Nilbreth", "Umbravia", "Jastoria"),
    "The {} is in the city of": ("Tower of Quelm", "Gate of Varnish", "Zorbin Cathedral", "Halvard Needle",
                                 "Palace of Esterine", "Crimdon Bridge", "Mirrowell Arch", "Obelisk of Tarn"),
    "Most people in {} speak": ("Veltravia", "Quorsland", "Mardovia", "Zenthara", "Brelkistan", "Ostavania",
                                "Talmuria", "Frindoria"),
}


@dataclass(frozen=True)
class Question:
    """A prompt to complete; `answer` is the truth, or None for an invented subject (no answer is right)."""

    relation: str
    subject: str
    answer: str | None

    @property
    def prompt(self) -> str:
        return self.relation.format(self.subject)

    @property
    def invented(self) -> bool:
        return self.answer is None

    def is_correct(self, completion: str) -> bool:
        """Whether a completion states the true answer first (always False for an invented subject)."""
        return self.answer is not None and completion.strip().lower().startswith(self.answer.lower())


def questions(split: str = "test", test_fraction: float = 0.3) -> list[Question]:
    """Known facts (factual recall's relations plus more capitals) and invented subjects of the same relations."""
    known = [Question(relation, subject, answer) for relation, facts in RELATIONS.items() for subject, answer in facts]
    known += [Question(CAPITALS, country, capital) for country, capital in MORE_CAPITALS
              if (country, capital) not in RELATIONS[CAPITALS]]
    invented = [Question(relation, subject, None) for relation, subjects in INVENTED.items() for subject in subjects]
    test = checked_split(split) == "test"
    return [q for q in known + invented if held_out(q.prompt, test_fraction) == test]


def statements(split: str = "test", seed: int = 0) -> tuple[list[str], list[str]]:
    """True and false statements from the known questions of `split` ("The capital of France is Paris." and the same
    prompt with another answer of its relation, a seeded choice): the labelled set for truth probes such as ITI."""
    rng = random.Random(f"statements-{split}-{seed}")
    known = [q for q in questions(split) if not q.invented]
    answers: dict[str, list[str]] = {}
    for q in questions("train") + questions("test"):
        if not q.invented:
            answers.setdefault(q.relation, []).append(q.answer)
    false = [f"{q.prompt} {rng.choice([a for a in answers[q.relation] if a != q.answer])}." for q in known]
    return [f"{q.prompt} {q.answer}." for q in known], false
