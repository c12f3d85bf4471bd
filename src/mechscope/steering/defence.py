"""A jailbreak defence that amplifies refusal conditionally, and the attack success rate it is judged by.

The refusal direction is added at its layer only to prompts whose projection on it (at the last prompt token,
or CAST's mean over the prompt: Lee et al. 2024) crosses a threshold, the threshold and comparison chosen by
grid search on a calibration split (harmful requests, plain and wrapped, to refuse; harmless ones to leave).
The attack success rate (ASR) of a set of wrapped harmful requests is the share whose greedy reply the phrase
judge does not call a refusal; the side effect is the refusal rate of harmless requests, plain and wrapped,
under the defence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mechscope.steering.conditional import ThresholdSearch, search_threshold
from mechscope.steering.interventions import Intervention, hook_pairs, vector_interventions
from mechscope.steering.targets import Direction
from mechscope.steering.vectors import SteeringVector
from mechscope.tasks.jailbreak import KINDS, WrappedRequest, wrap_requests
from mechscope.tasks.refusal_judge import judge_replies


@dataclass
class ConditionalRefusal:
    """The refusal direction added (x `coefficient`) where the calibrated condition on it holds."""

    search: ThresholdSearch
    edits: list[Intervention]

    @property
    def threshold(self) -> float:
        return self.search.threshold


def conditional_refusal(model, vector: SteeringVector, apply_to: Sequence[str], leave: Sequence[str],
                        coefficient: float = 1.0, per: str = "last", batch_size: int = 32) -> ConditionalRefusal:
    """Calibrate the condition (projection on the vector's first layer's direction there, at each prompt's last
    token, or its mean over the prompt with per="prompt" as CAST) on `apply_to` against `leave` prompts, and add
    the direction to the rows where it fires (a refusal direction: `RefusalDirection.vector`)."""
    layer = vector.check(model).layers[0]
    hook, target = vector.hook_name(layer), Direction(vector.direction(layer))
    search = search_threshold(model, hook, target, apply_to, leave, per, batch_size=batch_size)
    return ConditionalRefusal(search, [Intervention(hook, target, "add", coefficient,
                                                    condition=search.condition(hook, target))])


def refusal_by_kind(model, wrapped: Sequence[WrappedRequest], edits: Sequence[Intervention] = (),
                    max_new_tokens: int = 24, batch_size: int = 32) -> dict[str, float]:
    """Refusal rate per wrapper kind (greedy replies, phrase judge) with `edits` active; for harmful requests the
    attack success rate is one minus it."""
    judged = judge_replies(model, [w.text for w in wrapped], max_new_tokens, batch_size,
                           hooks=hook_pairs(model, edits))
    rates: dict[str, list[bool]] = {}
    for request, refused in zip(wrapped, judged.refused):
        rates.setdefault(request.kind, []).append(refused)
    return {kind: sum(refused) / len(refused) for kind, refused in rates.items()}


@dataclass(frozen=True)
class DefenceConfig:
    """How the jailbreak defence is calibrated and judged on a request set's train and test splits."""

    n_calibration: int = 48  # train requests per side, each under every wrapper, for the threshold search
    n_harmful: int = 0  # held-out harmful requests (plain and wrapped) attacked; 0: all
    n_harmless: int = 24  # held-out harmless requests (plain and wrapped) for the side effect; 0: all
    coefficient: float = 1.0  # multiple of the vector added where the condition fires
    per: str = "last"  # condition read at the last prompt token, or "prompt" (its mean, as CAST)
    max_new_tokens: int = 24  # greedy reply length the judge reads
    seed: int = 0


@dataclass
class DefenceReport:
    """Refusal rates per wrapper kind of held-out harmful and harmless requests, per run (no defence, conditional
    add, always add), and the calibrated condition; ASR = 1 - the harmful refusal rate."""

    threshold: float
    above: bool
    f1: float
    runs: dict[str, dict[str, dict[str, float]]]  # run -> "harmful"/"harmless" -> kind -> refusal rate

    def attack_success(self, run: str) -> dict[str, float]:
        return {kind: 1 - rate for kind, rate in self.runs[run]["harmful"].items()}


def _sample(requests, harmful: bool, split: str, n: int, seed: int) -> list[str]:
    texts = requests.instructions(harmful, split)
    return random.Random(f"{seed}-{split}-{harmful}").sample(texts, min(n, len(texts)) if n else len(texts))


def jailbreak_defence(model, vector: SteeringVector, requests,
                      config: DefenceConfig = DefenceConfig()) -> DefenceReport:
    """Calibrate `conditional_refusal` on wrapped and plain train requests of `requests` (anything with
    `instructions(harmful, split)`, e.g. SafetyRequests), then judge held-out requests under every wrapper kind with
    no defence, the conditional addition and the unconditional one."""
    kinds = ("plain", *KINDS)
    rng = random.Random(f"defence-{config.seed}")
    apply_to = [w.text for w in wrap_requests(_sample(requests, True, "train", config.n_calibration, config.seed),
                                              kinds, rng)]
    leave = [w.text for w in wrap_requests(_sample(requests, False, "train", config.n_calibration, config.seed),
                                           kinds, rng)]
    defence = conditional_refusal(model, vector, apply_to, leave, config.coefficient, config.per)
    harmful = wrap_requests(_sample(requests, True, "test", config.n_harmful, config.seed), kinds, rng)
    harmless = wrap_requests(_sample(requests, False, "test", config.n_harmless, config.seed), kinds, rng)
    edits = {"no defence": [], "conditional add": defence.edits,
             "always add": vector_interventions(vector, "add", config.coefficient, vector.layers[:1])}
    runs = {name: {side: refusal_by_kind(model, wrapped, run, config.max_new_tokens)
                   for side, wrapped in (("harmful", harmful), ("harmless", harmless))}
            for name, run in edits.items()}
    return DefenceReport(defence.threshold, defence.search.above, defence.search.f1, runs)
