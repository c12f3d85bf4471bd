"""Scorer statistics against hand-computed answers and brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mechscope.autointerp import ScoringError, auroc, balanced_accuracy, bootstrap_ci, pearson


def test_balanced_accuracy_known_answers():
    assert balanced_accuracy([1, 1, 1, 0], [1, 0, 1, 0]) == pytest.approx((2 / 3 + 1) / 2)
    assert balanced_accuracy([1] * 9 + [0], [1] * 10) == 0.5  # always "yes" is chance, however skewed the classes
    assert balanced_accuracy([True, False], [False, True]) == 0.0


def test_auroc_known_answers_with_ties():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert auroc([0, 0, 1, 1], [1, 2, 2, 3]) == 0.875  # the tied pair counts half
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert auroc([1, 1, 0], [3, 2, 1]) == 1.0 and auroc([0, 0, 1], [3, 2, 1]) == 0.0


def test_auroc_equals_the_pairwise_definition():
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 60), rng.integers(0, 5, 60)  # many ties
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    assert auroc(labels, scores) == pytest.approx(np.mean(pairs))


def test_pearson_known_answers():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert pearson([0.1, 0.1, 0.1], [1, 2, 3]) == 0.0  # a constant prediction carries no information
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_bad_inputs_are_named():
    with pytest.raises(ScoringError, match="both classes"):
        auroc([1, 1], [0.2, 0.3])
    with pytest.raises(ScoringError, match="one non-zero length"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(ScoringError, match="finite"):
        pearson([1, np.nan], [1, 2])
    with pytest.raises(ScoringError, match="0/1"):
        balanced_accuracy([0, 2], [0, 1])


def test_bootstrap_of_a_mean_matches_the_normal_interval_and_is_seeded():
    sample = np.random.default_rng(2).normal(5.0, 2.0, size=400)
    ci = bootstrap_ci(np.mean, sample, n_resamples=2000, seed=3)
    half = 1.96 * sample.std() / np.sqrt(sample.size)
    assert ci.estimate == pytest.approx(sample.mean())
    assert ci.low == pytest.approx(sample.mean() - half, abs=0.05) and ci.high == pytest.approx(sample.mean() + half,
                                                                                                abs=0.05)
    assert bootstrap_ci(np.mean, sample, n_resamples=2000, seed=3) == ci
    assert bootstrap_ci(np.mean, sample, n_resamples=2000, seed=4) != ci


def test_stratified_bootstrap_keeps_both_classes_for_auroc():
    labels = np.array([1] * 3 + [0] * 30)  # unstratified resamples would often lose the positives
    scores = np.r_[np.full(3, 0.9), np.linspace(0, 1, 30)]
    ci = bootstrap_ci(auroc, labels, scores, strata=labels, n_resamples=500)
    assert ci.low <= ci.estimate <= ci.high and ci.estimate == pytest.approx(auroc(labels, scores))
    with pytest.raises(ScoringError, match="one length"):
        bootstrap_ci(auroc, labels, scores[:-1])
