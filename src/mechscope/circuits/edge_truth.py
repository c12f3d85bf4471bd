"""Edge scores against ground truth and against themselves: ROC AUC, top-k overlap, bootstrap stability, seeds.

Scores are plain {edge name: score} dicts (MIB names, see circuits.mib) and a circuit is a set of edge
names, so any method's output plugs in. Edges are ranked by |score| unless `absolute=False`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.errors import MechscopeError


def _values(scores: Mapping[str, float], absolute: bool) -> dict[str, float]:
    return {edge: abs(float(v)) if absolute else float(v) for edge, v in scores.items()}


def tie_ranks(values: Tensor) -> Tensor:
    """1-based ranks of values [n], ties sharing their average rank."""
    order = values.argsort()
    ranks = torch.empty(len(values), dtype=torch.float64)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=torch.float64)
    unique, inverse = values.unique(return_inverse=True)
    mean_rank = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
    return (mean_rank / counts)[inverse]


def edge_roc_auc(scores: Mapping[str, float], truth: Iterable[str], absolute: bool = True) -> float:
    """ROC AUC of ranking every scored edge by score against `truth`: the probability that a true edge
    outscores a false one, ties counting half (the Mann-Whitney U statistic over n_true * n_false pairs)."""
    truth = set(truth)
    missing = sorted(truth - set(scores))
    if missing:
        raise MechscopeError(f"true edges without a score: {missing[:5]}; score every candidate edge")
    n_true, n_false = len(truth), len(scores) - len(truth)
    if n_true == 0 or n_false == 0:
        raise MechscopeError(f"ROC AUC needs true and false edges; got {n_true} true of {len(scores)} scored")
    values = _values(scores, absolute)
    edges = list(values)
    ranks = tie_ranks(torch.tensor([values[e] for e in edges], dtype=torch.float64))
    true_rank_sum = float(sum(r for e, r in zip(edges, ranks.tolist()) if e in truth))
    return (true_rank_sum - n_true * (n_true + 1) / 2) / (n_true * n_false)


def top_k(scores: Mapping[str, float], k: int, absolute: bool = True) -> list[str]:
    """The k highest-scoring edges, best first (ties broken by name, so the choice is reproducible)."""
    values = _values(scores, absolute)
    return sorted(values, key=lambda e: (-values[e], e))[:k]


def top_k_overlap(a: Mapping[str, float], b: Mapping[str, float], k: int, absolute: bool = True) -> float:
    """Share of the k top edges of `a` that are also among the k top edges of `b`."""
    if k < 1:
        raise MechscopeError(f"k must be >= 1, got {k}")
    return len(set(top_k(a, k, absolute)) & set(top_k(b, k, absolute))) / k


def top_k_recall(scores: Mapping[str, float], truth: Iterable[str], k: int | None = None, absolute: bool = True) -> float:
    """Share of the true edges found among the k top edges (k defaults to the number of true edges)."""
    truth = set(truth)
    if not truth:
        raise MechscopeError("top-k recall needs at least one true edge")
    return len(truth & set(top_k(scores, k or len(truth), absolute))) / len(truth)


@dataclass
class ScoreAgreement:
    """How far repeated scorings of the same edges agree (bootstrap resamples or seeds)."""

    runs: int
    k: int
    mean_top_k_overlap: float  # top_k_overlap averaged over every pair of runs
    mean_rank_correlation: float  # Spearman correlation of the scores, averaged over every pair of runs
    top_k_frequency: dict[str, float]  # share of runs that put each edge in their top k (edges that ever were)
    mean: dict[str, float]  # each edge's score, mean over runs
    std: dict[str, float]  # and its standard deviation

    def stable_edges(self, frequency: float = 0.9) -> list[str]:
        """Edges in the top k of at least `frequency` of the runs, most frequent first."""
        return sorted((e for e, f in self.top_k_frequency.items() if f >= frequency),
                      key=lambda e: (-self.top_k_frequency[e], e))

    def summary(self) -> dict:
        return {"runs": self.runs, "k": self.k, "mean_top_k_overlap": self.mean_top_k_overlap,
                "mean_rank_correlation": self.mean_rank_correlation, "stable_edges": self.stable_edges()}


def _spearman(a: Tensor, b: Tensor) -> float:
    ra, rb = tie_ranks(a), tie_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def score_agreement(runs: Sequence[Mapping[str, float]], k: int = 20, absolute: bool = True) -> ScoreAgreement:
    """Agreement of two or more scorings of the same edges."""
    if len(runs) < 2:
        raise MechscopeError(f"agreement needs at least 2 runs, got {len(runs)}")
    edges = sorted(runs[0])
    if any(set(run) != set(edges) for run in runs):
        raise MechscopeError("every run must score the same edges")
    table = torch.tensor([[float(run[e]) for e in edges] for run in runs], dtype=torch.float64)  # [run, edge]
    ranked = table.abs() if absolute else table
    pairs = list(itertools.combinations(range(len(runs)), 2))
    overlap = sum(top_k_overlap(runs[i], runs[j], k, absolute) for i, j in pairs) / len(pairs)
    correlation = sum(_spearman(ranked[i], ranked[j]) for i, j in pairs) / len(pairs)
    counts: dict[str, int] = {}
    for run in runs:
        for edge in top_k(run, k, absolute):
            counts[edge] = counts.get(edge, 0) + 1
    return ScoreAgreement(len(runs), k, overlap, correlation, {e: c / len(runs) for e, c in counts.items()},
                          dict(zip(edges, table.mean(0).tolist())), dict(zip(edges, table.std(0).tolist())))


def edge_stability(score_fn: Callable[[Tensor], Mapping[str, float]], n_prompts: int, resamples: int = 10,
                   k: int = 20, seed: int = 0, absolute: bool = True) -> ScoreAgreement:
    """Agreement of `score_fn(prompt_indices)` over bootstrap resamples of n_prompts prompts (with replacement)."""
    if n_prompts < 1 or resamples < 2:
        raise MechscopeError(f"edge stability needs n_prompts >= 1 and resamples >= 2, got {n_prompts} and {resamples}")
    generator = torch.Generator().manual_seed(seed)
    runs = [score_fn(torch.randint(n_prompts, (n_prompts,), generator=generator)) for _ in range(resamples)]
    return score_agreement(runs, k, absolute)


def seed_variance(score_fn: Callable[[int], Mapping[str, float]], seeds: Sequence[int] = (0, 1, 2), k: int = 20,
                  absolute: bool = True) -> ScoreAgreement:
    """Agreement of `score_fn(seed)` over seeds (of the prompts, of a method's sampling, of training)."""
    return score_agreement([score_fn(seed) for seed in seeds], k, absolute)
