"""Contrastive activation addition (Rimsky et al. 2023, "Steering Llama 2 via Contrastive Activation Addition").

Each A/B question is put to the model (through its chat template where it has one) and answered with the
behaviour's letter or the other one; the CAA vector at a layer is the difference in means of the
activations at the answer letter's token between the two. Prompts are built as token ids: the two answers'
tokenisations share a prefix up to the first token that differs (the letter, or "(A" where the tokenizer
merges it), so the contrast reads exactly the letter token and the evaluation compares exactly those two
tokens. The layer sweep adds coefficient x the vector at one layer at every position and records the mean
probability of the behaviour's letter (renormalised over the two letters) and its shift from unsteered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.errors import SteeringError
from mechscope.models.chat import chat_text
from mechscope.steering.directions import contrast, prompt_inputs
from mechscope.steering.interventions import Intervention, steer, vector_interventions
from mechscope.steering.vectors import DEFAULT_HOOK, SteeringVector
from mechscope.tasks.ab_choice import ABQuestion


@dataclass(frozen=True)
class CAAConfig:
    """Where CAA reads its vectors and how the layer sweep steers with them."""

    layers: tuple[int, ...] | None = None  # None: every layer
    coefficients: tuple[float, ...] = (-1.0, 1.0)  # multiples of each layer's vector the sweep adds
    hook: str = DEFAULT_HOOK  # hook pattern with {layer}
    batch_size: int = 32
    chat: bool = True  # put questions through the chat template where the model has one


@dataclass(frozen=True)
class ABTokens:
    """One question as tokens: the shared prefix, then the behaviour's and the other answer's letter token."""

    prefix: list[int]
    behaviour: int
    other: int


def ab_tokens(model, question: ABQuestion, chat: bool = True) -> ABTokens:
    """The question's prompt and both answers as token ids, split where the two answers' tokens first differ."""
    templated = chat and getattr(model.tokenizer, "chat_template", None) is not None
    prompt = chat_text(model, question.text()) if templated else f"{question.text()}\nAnswer: "
    rows = [model.encode([f"{prompt}({letter}"], prepend_bos=False if templated else None)["input_ids"][0].tolist()
            for letter in (question.behaviour_letter, question.other_letter)]
    first = next((i for i, (a, b) in enumerate(zip(*rows)) if a != b), None)
    if first is None:
        raise SteeringError("the two answer letters encode to the same tokens; the tokenizer cannot tell (A) from (B)")
    return ABTokens(rows[0][:first], rows[0][first], rows[1][first])


def caa_vector(model, questions: Sequence[ABQuestion], layers: Sequence[int] | None = None, hook: str = DEFAULT_HOOK,
               batch_size: int = 32, chat: bool = True, progress: bool = False) -> SteeringVector:
    """Difference in means at the answer letter (behaviour's minus other's), one vector per layer."""
    if not questions:
        raise SteeringError("CAA needs at least one A/B question, got none")
    tokens = [ab_tokens(model, question, chat) for question in questions]
    read = contrast(model, [t.prefix + [t.behaviour] for t in tokens], [t.prefix + [t.other] for t in tokens],
                    layers, hook, (-1,), batch_size, progress=progress)
    letters = [q.behaviour_letter for q in questions]
    return SteeringVector({layer: read.diff_in_means()[0, i] for i, layer in enumerate(read.layers)}, hook=hook,
                          method="caa", model=model.describe(), positions=[-1],
                          metrics={"n_questions": len(questions),
                                   "behaviour_under_a": letters.count("A") / len(letters)})


def behaviour_probability(model, tokens: Sequence[ABTokens], edits: Sequence[Intervention] = (),
                          batch_size: int = 32) -> Tensor:
    """P(behaviour letter) / (P(behaviour) + P(other)) [n_questions] (float64) at the answer position."""
    rows = []
    with steer(model, edits), torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            chunk = tokens[start:start + batch_size]
            logits = model(prompt_inputs(model, [t.prefix for t in chunk]))[:, -1].double()
            pair = torch.stack([logits[torch.arange(len(chunk)), [t.behaviour for t in chunk]],
                                logits[torch.arange(len(chunk)), [t.other for t in chunk]]], -1)
            rows.append(pair.softmax(-1)[:, 0].cpu())
    return torch.cat(rows)


@dataclass
class LayerSweep:
    """Mean behaviour probability per (layer, coefficient), unsteered, and per-question probabilities."""

    baseline: float
    rows: list[dict]  # {"layer", "coefficient", "p_behaviour", "shift", "steered_fraction"}
    per_question: dict = field(default_factory=dict, repr=False)  # (layer, coefficient) -> [n] probabilities

    def best(self, coefficient: float) -> dict:
        """The row with the largest shift (in the coefficient's direction) at `coefficient`."""
        rows = [row for row in self.rows if row["coefficient"] == coefficient]
        if not rows:
            raise SteeringError(f"the sweep has no coefficient {coefficient}; it has "
                                f"{sorted({row['coefficient'] for row in self.rows})}")
        return max(rows, key=lambda row: row["shift"] * (1 if coefficient >= 0 else -1))


def layer_sweep(model, vector: SteeringVector, questions: Sequence[ABQuestion],
                coefficients: Sequence[float] = (-1.0, 1.0), layers: Sequence[int] | None = None,
                batch_size: int = 32, chat: bool = True, progress: bool = False) -> LayerSweep:
    """The behaviour probability on held-out `questions` with coefficient x the vector added at each layer alone
    (every position), against unsteered; `steered_fraction` counts questions moved in the coefficient's sign."""
    tokens = [ab_tokens(model, question, chat) for question in questions]
    base = behaviour_probability(model, tokens, batch_size=batch_size)
    layers = vector.layers if layers is None else list(layers)
    sweep = LayerSweep(float(base.mean()), [])
    cells = [(layer, c) for layer in layers for c in coefficients]
    for layer, coefficient in tqdm(cells, desc="CAA layer sweep", disable=not progress):
        probs = behaviour_probability(model, tokens, vector_interventions(vector, "add", coefficient, [layer]),
                                      batch_size)
        moved = (probs - base) * (1 if coefficient >= 0 else -1) > 0
        sweep.rows.append({"layer": layer, "coefficient": coefficient, "p_behaviour": float(probs.mean()),
                           "shift": float((probs - base).mean()), "steered_fraction": float(moved.double().mean())})
        sweep.per_question[layer, coefficient] = probs.tolist()
    return sweep


def caa(model, train: Sequence[ABQuestion], test: Sequence[ABQuestion], config: CAAConfig = CAAConfig(),
        progress: bool = False) -> tuple[SteeringVector, LayerSweep]:
    """CAA vectors from `train` questions and their layer sweep on held-out `test` ones (recorded in the vector's
    metrics, with the best layer per coefficient)."""
    vector = caa_vector(model, train, config.layers, config.hook, config.batch_size, config.chat, progress)
    sweep = layer_sweep(model, vector, test, config.coefficients, batch_size=config.batch_size, chat=config.chat,
                        progress=progress)
    vector.metrics.update(baseline=sweep.baseline, sweep=sweep.rows,
                          best={str(c): sweep.best(c) for c in config.coefficients if c != 0})
    return vector, sweep
