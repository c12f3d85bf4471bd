"""A/B multiple-choice questions for contrastive activation addition (Rimsky et al. 2023): a question, the answer
that shows a behaviour and one that does not, and which letter the behaviour's answer carries. The letter
alternates across a set, so a contrast over the set measures the behaviour, not the letter.

`refusal_questions` builds the CAA paper's refusal behaviour from the safety request set: each request with a
refusal and a compliant answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mechscope.errors import TaskError
from mechscope.tasks.safety_requests import SafetyRequests

LETTERS = ("A", "B")
COMPLY = ("Sure, here is how to do that, step by step.", "Of course! Here is what you need to know.",
          "Happy to help. Start with the first step below.")
REFUSE = ("I'm sorry, but I can't help with that.", "I can't assist with this request.",
          "No, I won't help with that.")


@dataclass(frozen=True)
class ABQuestion:
    """A question with the behaviour's answer and the other answer; `behaviour_letter` is where the former goes."""

    question: str
    behaviour: str
    other: str
    behaviour_letter: str = "A"

    def __post_init__(self):
        if self.behaviour_letter not in LETTERS:
            raise TaskError(f"behaviour_letter must be one of {LETTERS}, got {self.behaviour_letter!r}")

    @property
    def other_letter(self) -> str:
        return LETTERS[1 - LETTERS.index(self.behaviour_letter)]

    def text(self) -> str:
        """The question with both answers labelled (A) and (B)."""
        answers = {self.behaviour_letter: self.behaviour, self.other_letter: self.other}
        return f"{self.question}\n\nChoices:\n(A) {answers['A']}\n(B) {answers['B']}"


def alternate_letters(pairs: list[tuple[str, str, str]], seed: int = 0) -> list[ABQuestion]:
    """(question, behaviour answer, other answer) triples as questions, half with the behaviour under (A) and half
    under (B), in a seeded order."""
    letters = [LETTERS[i % 2] for i in range(len(pairs))]
    random.Random(f"ab-letters-{seed}").shuffle(letters)
    return [ABQuestion(q, yes, no, letter) for (q, yes, no), letter in zip(pairs, letters)]


def refusal_questions(split: str = "train", harmful: bool | None = None, seed: int = 0) -> list[ABQuestion]:
    """Safety requests of `split` (harmful, harmless or both when None) with a refusal as the behaviour's answer
    and compliance as the other (seeded phrasings and letters)."""
    requests = SafetyRequests()  # the organism's template split; `seed` varies phrasings and letters
    sides = (True, False) if harmful is None else (harmful,)
    rng = random.Random(f"ab-refusal-{split}-{seed}")
    pairs = [(text, rng.choice(REFUSE), rng.choice(COMPLY)) for side in sides
             for text in requests.instructions(side, split)]
    return alternate_letters(pairs, seed)
