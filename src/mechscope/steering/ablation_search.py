"""A Heretic-style search for a refusal ablation (p-e-w/heretic): Optuna's TPE sampler co-minimises refusals on
harmful prompts and KL divergence on harmless ones over the parameters of a directional ablation that varies by
layer.

A trial picks the direction (a fractional layer index into per-layer refusal directions: the two neighbouring
layers' unit directions, interpolated) and, for the attention and the MLP outputs separately, a weight kernel over layers: `max_weight` at
`peak`, falling linearly to `min_weight` at distance `width`, nothing beyond. Each weighted output keeps
(1 - weight) of its projection on the direction (op "scale"). A trial costs one forward pass per prompt set:
refusals are counted from the first answer token (refusal score > 0: the refusal openers outweigh everything
else), KL from the next-token distributions after harmless prompts; check the chosen trial by generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import Tensor

from mechscope.errors import SteeringError
from mechscope.steering.interventions import Intervention
from mechscope.steering.refusal import kl_divergence, next_token_logits, refusal_score, refusal_token_ids
from mechscope.steering.targets import Direction
from mechscope.steering.vectors import SteeringVector

COMPONENTS = {"attn": "hook_attn_out", "mlp": "hook_mlp_out"}


@dataclass(frozen=True)
class AblationSearchConfig:
    """How many trials, the search space, and how the chosen trial is picked from the Pareto front."""

    trials: int = 40
    startup_trials: int = 12  # random trials before TPE models the two objectives
    seed: int = 0
    kl_bound: float = 0.5  # chosen: fewest refusals among Pareto trials with harmless KL below this
    max_weight: tuple[float, float] = (0.8, 1.5)  # range of the kernel's peak weight
    layer_range: tuple[float, float] = (0.2, 0.9)  # fractions of the depth the direction index and peak range over
    batch_size: int = 32

    def __post_init__(self):
        if self.trials < 1 or not 0 <= self.startup_trials <= self.trials:
            raise SteeringError(f"need trials >= 1 and 0 <= startup_trials <= trials, got {self.trials} and "
                                f"{self.startup_trials}")
        if not 0 <= self.layer_range[0] <= self.layer_range[1] <= 1:
            raise SteeringError(f"layer_range must be two fractions 0 <= lo <= hi <= 1, got {self.layer_range}")


@dataclass(frozen=True)
class AblationParams:
    """One trial's ablation: a fractional direction index and a kernel {max_weight, peak, min_weight, width} per
    component (attn, mlp)."""

    direction_index: float
    kernels: dict[str, dict[str, float]]

    def weights(self, n_layers: int) -> dict[str, list[float]]:
        """Each component's weight at every layer."""
        out = {}
        for component, k in self.kernels.items():
            row = []
            for layer in range(n_layers):
                distance = abs(layer - k["peak"])
                row.append(0.0 if distance > k["width"] else
                           k["max_weight"] + distance / k["width"] * (k["min_weight"] - k["max_weight"]))
            out[component] = row
        return out


def interpolated_direction(vector: SteeringVector, index: float) -> Tensor:
    """The unit direction at fractional position `index` in the vector's layers: the two neighbouring layers' unit
    directions mixed linearly, renormalised."""
    layers = vector.layers
    lo = min(max(int(math.floor(index)), 0), len(layers) - 1)
    hi = min(lo + 1, len(layers) - 1)
    units = [vector.direction(layers[i]).double() / vector.direction(layers[i]).double().norm().clamp_min(1e-12)
             for i in (lo, hi)]
    mixed = (1 - (index - lo)) * units[0] + (index - lo) * units[1]
    return (mixed / mixed.norm()).float()


def ablation_edits(direction: Tensor, params: AblationParams, n_layers: int) -> list[Intervention]:
    """Scale interventions keeping (1 - weight) of each weighted output's projection on `direction`."""
    target = Direction(direction)
    return [Intervention(f"blocks.{layer}.{COMPONENTS[component]}", target, "scale", 1.0 - weight)
            for component, row in params.weights(n_layers).items() for layer, weight in enumerate(row) if weight]


@dataclass
class AblationSearch:
    """Every trial's parameters and objectives, the Pareto front, the chosen trial and the unablated baseline."""

    trials: list[dict]  # {"number", "params", "refusals", "refusal_score", "kl"}
    pareto: list[int]  # trial numbers on the front
    chosen: int
    baseline: dict  # refusals of the plain model on the same prompts
    config: dict = field(default_factory=dict)

    @property
    def best(self) -> dict:
        return self.trials[self.chosen]

    def params(self, number: int | None = None) -> AblationParams:
        return AblationParams(**self.trials[self.chosen if number is None else number]["params"])

    def edits(self, vector: SteeringVector, n_layers: int, number: int | None = None) -> list[Intervention]:
        """The interventions of trial `number` (default: the chosen one) along `vector`'s directions."""
        params = self.params(number)
        return ablation_edits(interpolated_direction(vector, params.direction_index), params, n_layers)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path


def _suggest(trial, n_layers: int, n_candidates: int, config: AblationSearchConfig) -> AblationParams:
    lo, hi = config.layer_range
    index = trial.suggest_float("direction_index", lo * (n_candidates - 1), hi * (n_candidates - 1))
    kernels = {}
    for component in COMPONENTS:
        max_weight = trial.suggest_float(f"{component}.max_weight", *config.max_weight)
        kernels[component] = {
            "max_weight": max_weight,
            "peak": trial.suggest_float(f"{component}.peak", lo * (n_layers - 1), hi * (n_layers - 1)),
            "min_weight": trial.suggest_float(f"{component}.min_weight", 0.0, 1.0) * max_weight,
            "width": trial.suggest_float(f"{component}.width", 1.0, max(1.0, 0.6 * n_layers)),
        }
    return AblationParams(index, kernels)


def search_ablation(model, vector: SteeringVector, harmful: Sequence[str], harmless: Sequence[str],
                    config: AblationSearchConfig = AblationSearchConfig()) -> AblationSearch:
    """TPE over the ablation's parameters along `vector`'s per-layer refusal directions (e.g. `directions` of
    harmful against harmless requests) minimising (refusal fraction on `harmful`, KL on `harmless`); the chosen
    trial has the fewest refusals among Pareto trials within `config.kl_bound` (else the front's lowest KL)."""
    try:
        import optuna
    except ImportError as err:
        raise SteeringError("the ablation search needs Optuna: pip install 'mechscope[search]' (or optuna)") from err
    if not harmful or not harmless:
        raise SteeringError("the ablation search needs harmful and harmless prompts, got an empty set")
    ids = refusal_token_ids(model.tokenizer)
    reference = next_token_logits(model, harmless, (), config.batch_size)
    plain = refusal_score(next_token_logits(model, harmful, (), config.batch_size), ids)
    rows: list[dict] = []

    def objective(trial) -> tuple[float, float]:
        params = _suggest(trial, model.n_layers, len(vector.layers), config)
        edits = ablation_edits(interpolated_direction(vector, params.direction_index), params, model.n_layers)
        scores = refusal_score(next_token_logits(model, harmful, edits, config.batch_size), ids)
        kl = float(kl_divergence(reference, next_token_logits(model, harmless, edits, config.batch_size)).mean())
        rows.append({"number": trial.number, "params": asdict(params), "refusals": float((scores > 0).double().mean()),
                     "refusal_score": float(scores.mean()), "kl": kl})
        return rows[-1]["refusals"], kl

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(n_startup_trials=config.startup_trials, seed=config.seed,
                                         multivariate=True)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=config.trials)
    pareto = sorted(t.number for t in study.best_trials)
    within = [n for n in pareto if rows[n]["kl"] <= config.kl_bound]
    chosen = (min(within, key=lambda n: (rows[n]["refusals"], rows[n]["kl"])) if within
              else min(pareto, key=lambda n: rows[n]["kl"]))
    return AblationSearch(rows, pareto, chosen, {"refusals": float((plain > 0).double().mean()),
                                                 "refusal_score": float(plain.mean()), "n_harmful": len(harmful),
                                                 "n_harmless": len(harmless)}, asdict(config))
