"""Toy stages: a toy model of superposition, and a model organism with its behavioural check."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.pipeline.context import StageContext, StageOutcome
from mechscope.toy import ToyConfig


@dataclass
class SuperpositionConfig:
    """A toy model of superposition (Elhage et al. 2022) trained and plotted."""

    toy: ToyConfig = field(default_factory=lambda: ToyConfig(5, 2, [1.0, 0.2, 0.05], steps=8000, seed=1))
    represented_norm: float = 0.5  # a feature counts as represented when its column norm exceeds this


def superposition(cfg: SuperpositionConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.toy import feature_norms, plot_superposition, train_toy

    toy = train_toy(cfg.toy)
    metrics = {}
    n, m = cfg.toy.n_features, cfg.toy.m
    for p_feature, norms in zip(toy.cfg.feature_probability, feature_norms(toy)):
        metrics[f"represented_at_p{p_feature}"] = represented = int((norms > cfg.represented_norm).sum())
        ctx.say(f"feature probability {p_feature:<4}: {represented} of {n} features represented")
    plot = plot_superposition(toy, ctx.dir / f"superposition_{n}_in_{m}.png")
    return StageOutcome({"toy-model plot": plot}, metrics)


@dataclass
class OrganismConfig:
    """A model organism from the zoo cache (trained once per machine) and its behavioural check."""

    organism: str = "organism:induction:small"


def organism(cfg: OrganismConfig, ctx: StageContext) -> StageOutcome:
    loaded = ctx.models.organism(cfg.organism)
    check = loaded.check().to_dict()
    ctx.say(f"trained in {loaded.manifest['train_seconds']:.0f}s (cached in {loaded.path.parent}); " +
            ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in check.items()))
    metrics = {k: v for k, v in check.items() if isinstance(v, (int, float, str))}
    return StageOutcome({"organism": loaded.path}, metrics)
