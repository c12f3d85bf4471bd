"""A jailbreak defence that amplifies refusal conditionally, and the attack success rate it is judged by.

The refusal direction is added at its layer only to prompts whose projection on it (at the last prompt token,
or CAST's mean over the prompt: Lee et al. 2024) crosses a threshold, the threshold and comparison chosen by
grid search on a calibration split (harmful requests, plain and wrapped, to refuse; harmless ones to leave).
The attack success rate (ASR) of a set of wrapped harmful requests is the share whose greedy reply the phrase
judge does not call a refusal; the side effect is the refusal rate of harmless requests, plain and wrapped,
under the defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mechscope.steering.conditional import ThresholdSearch, search_threshold
from mechscope.steering.interventions import Intervention, hook_pairs
from mechscope.steering.targets import Direction
from mechscope.steering.vectors import SteeringVector
from mechscope.tasks.jailbreak import WrappedRequest
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
