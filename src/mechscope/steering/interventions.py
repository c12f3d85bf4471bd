"""Interventions: add, ablate, clamp, cap or scale one coordinate (a direction or a dictionary latent) at a hook.

Every operation is a function of the coordinate alone, so one hook serves them all, on the residual
stream, on a head, or in a dictionary's latent space. Values are in units of the target's scale (a
direction's length; 1 for latents): `add 1` adds the vector itself, `clamp 0.5` sets the projection to
half its length, `cap 2` limits it to twice; `scale` multiplies the coordinate by its value as it is
(`scale 0.3` removes 70% of it: a partial ablation). Edits are scoped to prompt / generated / all / explicit
positions through the positions machinery of models/, so they mean the same under left padding,
batching and KV-cache generation; a `Condition` makes one apply only where another coordinate crosses
a threshold (CAST, Lee et al. 2024; Goodfire's set_when).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.errors import SteeringError
from mechscope.models.positions import Scope, check_scope, current
from mechscope.steering.targets import Direction, Latent

OPS = {
    "add": lambda coordinate, value: coordinate + value,
    "ablate": lambda coordinate, value: torch.zeros_like(coordinate),
    "clamp": lambda coordinate, value: torch.full_like(coordinate, value),
    "cap": lambda coordinate, value: coordinate.clamp(max=value),
    "scale": lambda coordinate, value: coordinate * value,  # 0: ablate; between 0 and 1: a partial ablation
}
PER = ("prompt", "last", "token")


@dataclass(frozen=True)
class Condition:
    """Apply only where `target`'s coordinate at `hook` is above (or below) `threshold`: per row from the mean
    over its prompt tokens (CAST's prompt-level check) or from its last prompt token (where a chat model decides
    how to answer), either kept for every generated token; or per token."""

    hook: str
    target: Direction | Latent
    threshold: float
    above: bool = True
    per: str = "prompt"

    def __post_init__(self):
        if self.per not in PER:
            raise SteeringError(f"a condition is decided per one of {', '.join(PER)}, got per={self.per!r}")


@dataclass(frozen=True)
class Intervention:
    """`op` ("add", "ablate", "clamp", "cap", "scale") with `value` on `target` at `hook`, at the positions `where` selects."""

    hook: str
    target: Direction | Latent
    op: str = "add"
    value: float = 1.0
    where: Scope = "all"
    condition: Condition | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise SteeringError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        check_scope(self.where)


def prompt_mean(coordinate: Tensor, is_prompt: Tensor) -> Tensor:
    """Mean [batch] of a coordinate [batch, pos] over each row's prompt tokens: what a per-prompt condition tests."""
    return (coordinate * is_prompt).sum(1) / is_prompt.sum(1).clamp(min=1)


@dataclass
class _Gate:
    """A condition's decision, kept between the forward calls of one generation (prompt first, then each step)."""

    condition: Condition
    rows: Tensor | None = None  # [batch] bool, per="prompt"
    tokens: Tensor | None = field(default=None, repr=False)  # [batch, pos] bool of the running call, per="token"

    def observe(self, act: Tensor, name: str) -> None:
        condition = self.condition
        coordinate = condition.target.coordinate(act, name).float()
        passed = coordinate > condition.threshold if condition.above else coordinate < condition.threshold
        if condition.per == "token":
            self.tokens = passed
            return
        prompt = current().is_prompt.to(coordinate.device)
        if prompt.any():  # a call over the prompt decides; later KV-cache steps keep the decision
            score = (prompt_mean(coordinate, prompt) if condition.per == "prompt"
                     else coordinate.gather(1, prompt.long().cumsum(1).argmax(1, keepdim=True))[:, 0])
            self.rows = score > condition.threshold if condition.above else score < condition.threshold

    def mask(self) -> Tensor:
        if self.condition.per == "token":
            return self.tokens
        return self.rows[:, None]


def _edit(intervention: Intervention, gate: _Gate | None):
    target, op = intervention.target, OPS[intervention.op]
    value = intervention.value * (1.0 if intervention.op == "scale" else target.scale)

    def hook(act: Tensor, name: str) -> Tensor:
        mask = current().mask(intervention.where).to(act.device)
        if gate is not None:
            mask = mask & gate.mask().to(act.device)
        new = act.clone()
        return target.write(new, name, op(target.coordinate(act, name), value), mask)
    return hook


def hook_pairs(model, interventions: Iterable[Intervention]) -> list[tuple[str, object]]:
    """(hook name, hook function) pairs for `model.hooks(...)` or `model.generate(..., hooks=...)`; a condition
    observes before the edits that depend on it, so its hook must fire no later than theirs."""
    order = {name: rank for rank, name in enumerate(model.hook_names())}
    pairs = []
    gates: dict[int, _Gate] = {}  # by identity: conditions hold tensors and dictionaries
    for intervention in interventions:
        condition = intervention.condition
        if condition is not None:
            if order[model.point(condition.hook).name] > order[model.point(intervention.hook).name]:
                raise SteeringError(f"the condition at {condition.hook} fires after the edit at {intervention.hook}; "
                                    "read the condition at the same or an earlier hook")
            if id(condition) not in gates:
                gates[id(condition)] = _Gate(condition)
                pairs.append((condition.hook, lambda act, name, gate=gates[id(condition)]: gate.observe(act, name)))
        pairs.append((intervention.hook, _edit(intervention, gates.get(id(condition)))))
    return pairs


@contextmanager
def steer(model, interventions: Intervention | Iterable[Intervention]) -> Iterator:
    """Run forwards and `model.generate` calls inside the block with `interventions` active."""
    interventions = [interventions] if isinstance(interventions, Intervention) else list(interventions)
    pairs = hook_pairs(model, interventions)
    for name, _ in pairs:
        if name.endswith("hook_pattern"):
            raise SteeringError(f"{name} holds attention patterns; steer an activation (resid, attn/mlp out, "
                                "hook_z, hook_result) instead")
    with model.hooks(pairs):
        yield model


def vector_interventions(vector, op: str = "add", value: float = 1.0, layers: Iterable[int] | None = None,
                         where: Scope = "all", condition: Condition | None = None) -> list[Intervention]:
    """One intervention per layer of a SteeringVector (all its layers by default)."""
    chosen = vector.layers if layers is None else list(layers)
    return [Intervention(vector.hook_name(layer), Direction(vector.direction(layer)), op, value, where, condition)
            for layer in chosen]


def directional_ablation(model, direction: Tensor, where: Scope = "all") -> list[Intervention]:
    """Project `direction` out of everything that writes the residual stream: each block's input and its attention
    and MLP outputs (Arditi et al. 2024); what `orthogonalize` bakes into the weights."""
    target = Direction(direction)
    return [Intervention(f"blocks.{layer}.{hook}", target, "ablate", where=where)
            for layer in range(model.n_layers) for hook in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")]
