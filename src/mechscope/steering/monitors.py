"""Monitors: a score for every token at one hook, read as the model runs (any forward or `generate`).

A score is a projection on a direction, a linear probe's logit or a dictionary latent's activation. A
monitor records each token's score by its position in the row's text (prompt tokens first, padding
skipped), so scores line up with tokens under batching, left padding and the KV cache. With a threshold
it records the first crossing of each row (an alert) and may guard: "stop" ends that row's generation at
the crossing token, "cap" clips the projection at the threshold (activation capping) wherever it is watched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models import positions
from mechscope.models.generation import Generation, halt
from mechscope.models.positions import HookFn

if TYPE_CHECKING:
    from mechscope.dictionaries import Dictionary
    from mechscope.models import HookedModel

GUARDS = ("stop", "cap")
WATCHES = ("prompt", "generated", "all", "last_prompt")  # last_prompt: each row's final prompt token only


@dataclass(frozen=True)
class LinearScore:
    """acts @ weight + bias per token: a projection on a unit direction, or a linear probe's logit."""

    weight: Tensor  # [d_model]
    bias: float = 0.0

    def __call__(self, acts: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos] float32
        return acts.float() @ self.weight.to(acts.device, torch.float32) + self.bias

    def capped(self, acts: Tensor, cap: float) -> Tensor:
        """`acts` moved along `weight` just enough that no token scores above `cap`."""
        weight = self.weight.to(acts.device, torch.float32)
        excess = (self(acts) - cap).clamp_min(0)  # [batch, pos]
        return (acts.float() - excess[..., None] * weight / weight.dot(weight)).to(acts.dtype)


def projection(direction: Tensor) -> LinearScore:
    """The projection of each token's activation on `direction` [d_model] (normalised to unit length)."""
    direction = direction.detach().float()
    if direction.ndim != 1 or not direction.norm() > 0:
        raise MechscopeError(f"a direction must be a non-zero vector [d_model], got shape {tuple(direction.shape)}")
    return LinearScore(direction / direction.norm())


def probe(weight: Tensor, bias: float = 0.0) -> LinearScore:
    """A linear probe's logit, weight [d_model] and bias as trained (e.g. by logistic regression)."""
    weight = weight.detach().float()
    if weight.ndim != 1:
        raise MechscopeError(f"a probe weight must be a vector [d_model], got shape {tuple(weight.shape)}")
    return LinearScore(weight, float(bias))


@dataclass(frozen=True)
class LatentScore:
    """One dictionary latent's activation per token."""

    dictionary: Dictionary
    latent: int

    def __call__(self, acts: Tensor) -> Tensor:
        weights = self.dictionary.W_enc
        return self.dictionary.encode(acts.to(weights.device, weights.dtype))[..., self.latent].float()


@dataclass(frozen=True)
class Alert:
    """A row's first watched token scoring at or above the threshold."""

    row: int
    position: int  # index of the token in the row's text, prompt tokens first
    score: float


@dataclass(frozen=True)
class MonitorRecord:
    """What a monitor saw: per row, one score per token (NaN for a token no forward pass processed)."""

    scores: list[Tensor]  # [n_tokens] per row, in text order
    alerts: list[Alert]


@dataclass
class Monitor:
    """Scores every token at `hook`; with a threshold it alerts and may guard ("stop" or "cap")."""

    hook: str
    score: LinearScore | LatentScore
    threshold: float | None = None  # scores at or above it alert (None: only record scores)
    guard: str | None = None  # None: only watch; "stop": end a row's generation; "cap": clip the projection
    watch: str = "all"  # positions that alert and guard: "prompt", "generated", "all" or "last_prompt"
    _calls: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.watch not in WATCHES:
            raise MechscopeError(f"watch must be one of {WATCHES}, got {self.watch!r}")
        if self.guard is not None and (self.guard not in GUARDS or self.threshold is None):
            raise MechscopeError(f"guard must be one of {GUARDS} with a threshold, or None; got guard "
                                 f"{self.guard!r} with threshold {self.threshold!r}")
        if self.guard == "cap" and not isinstance(self.score, LinearScore):
            raise MechscopeError(f"a cap guard needs a projection or probe score, got {type(self.score).__name__}")

    def hooks(self) -> list[tuple[str, HookFn]]:
        """(hook name, function) pairs for `model.hooks(...)` or `model.generate(..., hooks=...)`."""
        return [(self.hook, self._on_forward)]

    def reset(self) -> None:
        """Forget what was recorded (rows are numbered per batch)."""
        self._calls.clear()

    def _on_forward(self, acts: Tensor, name: str) -> Tensor | None:
        if acts.ndim != 3:
            raise MechscopeError(f"a monitor reads [batch, pos, d] activations; {name} gives shape {tuple(acts.shape)}")
        where = positions.current()
        scores = self.score(acts)  # [batch, pos]
        watched = self._watched(where)
        self._calls.append((where.absolute.cpu(), watched.cpu(), scores.detach().cpu()))
        if self.guard == "stop":
            crossed = ((scores >= self.threshold) & watched).any(-1)
            if crossed.any():
                halt(crossed.nonzero()[:, 0].tolist())
        elif self.guard == "cap":
            return torch.where(watched[..., None], self.score.capped(acts, self.threshold), acts)
        return None

    def _watched(self, where: positions.Positions) -> Tensor:  # [batch, pos] bool
        if self.watch != "last_prompt":
            return where.mask(self.watch)
        next_is_prompt = torch.cat([where.is_prompt[:, 1:], torch.zeros_like(where.is_prompt[:, :1])], dim=1)
        return where.is_prompt & ~next_is_prompt

    def record(self, lengths: list[int] | None = None) -> MonitorRecord:
        """Scores by row and position since the last reset; `lengths` keeps each row's first tokens only (a
        generation's rows end at their own lengths, the batch runs on)."""
        if not self._calls:
            raise MechscopeError(f"monitor on {self.hook} has seen no forward pass since its last reset")
        n_rows = self._calls[0][0].shape[0]
        width = max([int(absolute.max()) + 1 for absolute, _, _ in self._calls] + list(lengths or []))
        scores = torch.full((n_rows, width), float("nan"))
        watched = torch.zeros((n_rows, width), dtype=torch.bool)
        for absolute, mask, values in self._calls:
            rows, columns = (absolute >= 0).nonzero(as_tuple=True)
            scores[rows, absolute[rows, columns]] = values[rows, columns]
            watched[rows, absolute[rows, columns]] = mask[rows, columns]
        lengths = lengths or [width] * n_rows
        per_row = [scores[row, :length] for row, length in enumerate(lengths)]
        alerts = []
        if self.threshold is not None:
            for row, length in enumerate(lengths):
                crossed = ((scores[row, :length] >= self.threshold) & watched[row, :length]).nonzero()
                if len(crossed):
                    position = int(crossed[0])
                    alerts.append(Alert(row, position, float(scores[row, position])))
        return MonitorRecord(per_row, alerts)


@dataclass(frozen=True)
class MonitoredGeneration:
    """A generation and what the monitor saw of it (scores cover prompt and new tokens)."""

    generation: Generation
    record: MonitorRecord


def monitored_generate(model: HookedModel, monitor: Monitor, inputs, **settings) -> MonitoredGeneration:
    """`model.generate(inputs, **settings)` with the monitor attached; scores cover each row's prompt and new tokens."""
    monitor.reset()
    generation = model.generate(inputs, hooks=monitor.hooks(), **settings)
    lengths = [n + len(new) for n, new in zip(generation.prompt_lengths, generation.tokens)]
    return MonitoredGeneration(generation, monitor.record(lengths))


def monitored_forward(model: HookedModel, monitor: Monitor, inputs) -> tuple[Tensor, MonitorRecord]:
    """Logits of one forward pass with the monitor attached, and its per-token record."""
    monitor.reset()
    batch = model.encode(inputs)
    with model.hooks(monitor.hooks()), torch.no_grad():
        logits = model(batch)
    lengths = batch["attention_mask"].sum(-1).tolist() if "attention_mask" in batch else None
    return logits, monitor.record(lengths)
