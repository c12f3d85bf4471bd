"""Concept steering measured offline, AxBench-style (Wu et al. 2025): does steering move text toward a concept,
what does it cost in fluency, and does it beat simply asking for the concept?

Anthropic's "Golden Gate Claude" clamped one SAE latent to many times its maximum activation. Here each setting
(unsteered, prompted: the concept asked for in the prompt, and each steering value) answers the same neutral
prompts greedily; the concept score is the MiniLM cosine similarity of each answer to the concept's text (a
latent's label), fluency is the unsteered model's NLL of the answer (nats/token) and its share of distinct
bigrams. Values are multiples of a scale: a latent's maximum activation when clamping it, a direction's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from mechscope.errors import SteeringError
from mechscope.steering.answers import ChatAnswers, answer_nll, chat_answers
from mechscope.steering.interventions import Intervention
from mechscope.steering.targets import Direction, Latent

STEERING_OPS = ("add", "clamp", "cap")  # the ops that push a coordinate toward a value; ablate and scale remove it
NEUTRAL_PROMPTS = (
    "Tell me a short story.",
    "What did you do today?",
    "Describe your favourite place.",
    "Write a sentence about anything you like.",
    "What should I cook for dinner?",
    "Give me some advice for the week.",
    "What is on your mind?",
    "Describe a walk in the afternoon.",
    "Tell me something interesting.",
    "Write a short note to a friend.",
    "What makes a good day?",
    "Explain something you find fascinating.",
)


@dataclass(frozen=True)
class ConceptConfig:
    """Which steering values to try and how the answers are generated."""

    values: tuple[float, ...] = (2.0, 5.0, 10.0)  # multiples of the target's scale
    op: str = "clamp"  # clamp the coordinate to the value (Golden Gate), or add it
    where: str = "all"  # positions steered: all, prompt or generated
    max_new_tokens: int = 32
    batch_size: int = 16
    prompts: tuple[str, ...] = NEUTRAL_PROMPTS
    prompted: str = "{prompt} Talk about {concept}."  # the prompting baseline's template

    def __post_init__(self):
        if self.op not in STEERING_OPS:
            raise SteeringError(f"concept steering op must be add, clamp or cap, got {self.op!r}")
        if not self.prompts or not self.values:
            raise SteeringError("concept steering needs at least one prompt and one value")


@dataclass
class ConceptSteering:
    """One row per setting: concept similarity, its gain over unsteered, NLL, distinct bigrams, examples."""

    concept: str
    scale: float
    rows: list[dict] = field(default_factory=list)

    def row(self, setting: str) -> dict:
        return next(r for r in self.rows if r["setting"] == setting)

    def best(self) -> dict:
        """The steered row with the highest concept similarity."""
        return max((r for r in self.rows if r["setting"] == "steered"), key=lambda r: r["similarity"])

    def to_dict(self) -> dict:
        return asdict(self)


def distinct_bigrams(tokens: Sequence[int]) -> float | None:
    """Share of an answer's token bigrams that are distinct (1: no repetition); None under two tokens."""
    pairs = list(zip(tokens, tokens[1:]))
    return len(set(pairs)) / len(pairs) if pairs else None


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def concept_steering(model, hook: str, target: Direction | Latent, concept: str, config: ConceptConfig = ConceptConfig(),
                     scale: float = 1.0, embedder=None) -> ConceptSteering:
    """Answers to the neutral prompts unsteered, prompted with the concept, and with `config.op` at each value x
    `scale` on `target` at `hook`, each scored for the concept and for fluency."""
    from mechscope.models.embedding import SentenceEmbedder

    if not concept.strip():
        raise SteeringError("concept steering needs the concept's text (a latent's label), got an empty string")
    embedder = embedder if embedder is not None else SentenceEmbedder()
    anchor = embedder.embed([concept])[0]
    result = ConceptSteering(concept, float(scale))
    prompted = [config.prompted.format(prompt=p, concept=concept) for p in config.prompts]
    settings = [("unsteered", None, list(config.prompts), ()), ("prompted", None, prompted, ())]
    settings += [("steered", value, list(config.prompts), [Intervention(hook, target, config.op, value * scale,
                                                                         config.where)])
                 for value in config.values]
    for setting, value, chats, edits in settings:
        answers = chat_answers(model, chats, config.max_new_tokens, config.batch_size, edits)
        result.rows.append(_score(setting, value, answers, embedder, anchor, answer_nll(model, answers)))
    base = result.row("unsteered")["similarity"]
    for row in result.rows:
        row["gain"] = row["similarity"] - base
    return result


def _score(setting: str, value, answers: ChatAnswers, embedder, anchor, nll) -> dict:
    similarity = embedder.embed(answers.texts) @ anchor
    return {"setting": setting, "value": value, "similarity": float(similarity.mean()),
            "per_prompt": [round(float(s), 4) for s in similarity], "nll": _mean(nll),
            "distinct2": _mean(distinct_bigrams(a) for a in answers.answer_ids), "examples": answers.texts[:3]}


def latent_concept(bound, latent: int, catalog=None) -> tuple[Latent, str | None, float | None]:
    """A dictionary latent as a concept-steering target: (target, its latest label, its max activation) with the
    label and maximum read from a feature catalogue when given (None where it has neither)."""
    target = Latent(bound, latent)
    if catalog is None:
        return target, None, None
    info = catalog.get(latent)
    label = info.labels[-1].text if info.labels else None
    return target, label, info.max_activation or None
