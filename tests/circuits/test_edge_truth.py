"""Edge ROC AUC, top-k measures and score agreement, against answers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.circuits.edge_truth import (edge_roc_auc, edge_stability, score_agreement, seed_variance, tie_ranks,
                                           top_k_overlap, top_k_recall)
from mechscope.errors import MechscopeError


def test_auc_counts_won_pairs():
    # true a beats b and d; true c loses to b and beats d: 3 of 4 (true, false) pairs won
    assert edge_roc_auc({"a": 3, "b": 2, "c": 1, "d": 0}, {"a", "c"}) == 0.75
    assert edge_roc_auc({"a": 3, "b": 2, "c": 1, "d": 0}, {"a", "b"}) == 1.0
    assert edge_roc_auc({"a": 3, "b": 2, "c": 1, "d": 0}, {"c", "d"}) == 0.0


def test_ties_count_half_and_signs_are_dropped_by_default():
    assert edge_roc_auc({"a": 1, "b": 1, "c": 0}, {"a"}) == 0.75  # tie with b: 1/2, beats c: 1
    assert edge_roc_auc({"a": -5, "b": 1, "c": 0}, {"a"}) == 1.0
    assert edge_roc_auc({"a": -5, "b": 1, "c": 0}, {"a"}, absolute=False) == 0.0
    assert tie_ranks(torch.tensor([0.0, 2.0, 2.0, 1.0])).tolist() == [1.0, 3.5, 3.5, 2.0]


def test_auc_refuses_what_it_cannot_rank():
    with pytest.raises(MechscopeError, match="true edges without a score"):
        edge_roc_auc({"a": 1.0}, {"b"})
    with pytest.raises(MechscopeError, match="needs true and false edges"):
        edge_roc_auc({"a": 1.0}, {"a"})


def test_top_k_overlap_and_recall():
    a, b = {"w": 4, "x": -3, "y": 2, "z": 1}, {"w": 1, "x": 2, "y": 3, "z": 4}
    assert top_k_overlap(a, b, 2) == 0.0 and top_k_overlap(a, b, 3) == pytest.approx(2 / 3)
    assert top_k_recall(a, {"x", "z"}) == 0.5 and top_k_recall(a, {"x", "z"}, k=4) == 1.0


def test_reversed_runs_disagree_completely():
    runs = [{"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}]
    agreement = score_agreement(runs, k=1)
    assert agreement.mean_rank_correlation == pytest.approx(-1.0) and agreement.mean_top_k_overlap == 0.0
    assert agreement.top_k_frequency == {"a": 0.5, "c": 0.5} and agreement.stable_edges() == []
    assert agreement.mean == {"a": 2.0, "b": 2.0, "c": 2.0}
    assert agreement.std["a"] == pytest.approx(math.sqrt(2)) and agreement.std["b"] == 0.0


def test_bootstrap_keeps_the_edge_every_prompt_agrees_on():
    g = torch.Generator().manual_seed(0)
    per_prompt = {"x": torch.ones(40), "y": torch.rand(40, generator=g) / 2, "z": torch.rand(40, generator=g) / 2}
    draws = []

    def score(indices):
        draws.append(indices)
        return {edge: float(values[indices].mean()) for edge, values in per_prompt.items()}
    stability = edge_stability(score, 40, resamples=6, k=1)
    assert stability.runs == 6 and stability.stable_edges(1.0) == ["x"] and stability.mean_top_k_overlap == 1.0
    assert all(len(d) == 40 for d in draws) and any(len(set(d.tolist())) < 40 for d in draws)  # with replacement
    seeds = seed_variance(lambda seed: {"x": 1.0 + seed, "y": 0.5, "z": 0.0}, seeds=(0, 1, 2), k=1)
    assert seeds.std["x"] == pytest.approx(1.0) and seeds.mean_rank_correlation == pytest.approx(1.0)
