"""Statistics that need no model: balanced accuracy, AUROC, Pearson correlation, bootstrap intervals (autointerp
scorers and steering monitors share them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mechscope.errors import MechscopeError


class ScoringError(MechscopeError):
    """A score asked of inputs that cannot give one: empty, unequal lengths, non-finite, or one class only."""


def _columns(*samples: ArrayLike) -> list[np.ndarray]:
    """The samples as 1-D finite arrays of one shared, non-zero length."""
    arrays = [np.asarray(s, dtype=float) for s in samples]
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or arrays[0].ndim != 1 or arrays[0].size == 0:
        raise ScoringError(f"expected 1-D samples of one non-zero length, got shapes {[a.shape for a in arrays]}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ScoringError("expected finite values, got NaN or infinity")
    return arrays


def _binary(values: np.ndarray, what: str) -> np.ndarray:
    if not np.isin(values, (0, 1)).all():
        raise ScoringError(f"{what} must be 0/1 or booleans, got values {np.unique(values)[:5].tolist()}")
    return values.astype(bool)


def _classes(labels: np.ndarray) -> np.ndarray:
    """Boolean labels with both classes present."""
    positive = _binary(labels, "labels")
    if positive.all() or not positive.any():
        raise ScoringError(f"labels need both classes, got {positive.sum()} positive of {positive.size}")
    return positive


def balanced_accuracy(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Mean of the true-positive and true-negative rates: 0.5 is chance whatever the class balance."""
    labels, predictions = _columns(labels, predictions)
    positive, predicted = _classes(labels), _binary(predictions, "predictions")
    return float(0.5 * (predicted[positive].mean() + (~predicted[~positive]).mean()))


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative, ties counting half."""
    from scipy.stats import rankdata  # scipy.stats costs ~0.6 s to import; only scoring needs it

    labels, scores = _columns(labels, scores)
    positive = _classes(labels)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    rank_sum = rankdata(scores)[positive].sum()  # tied scores share their average rank
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; 0 where either side is constant (a constant prediction carries no information)."""
    x, y = _columns(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy)))


@dataclass(frozen=True)
class ConfidenceInterval:
    """A statistic on the full sample with its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float


def bootstrap_ci(statistic: Callable[..., float], *samples: ArrayLike, strata: ArrayLike | None = None,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> ConfidenceInterval:
    """Percentile bootstrap of `statistic(*samples)`, resampling rows of all samples together.

    With `strata` (e.g. the labels) rows are resampled within each stratum, so every resample keeps its class counts.
    """
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ScoringError(f"need 0 < confidence < 1 and n_resamples >= 1, got {confidence} and {n_resamples}")
    arrays = [np.asarray(s) for s in samples]
    groups = [np.arange(len(arrays[0]))] if strata is None else \
        [np.flatnonzero(np.asarray(strata) == value) for value in np.unique(strata)]
    if sum(len(g) for g in groups) != len(arrays[0]) or any(len(a) != len(arrays[0]) for a in arrays):
        raise ScoringError(f"samples and strata must have one length, got {[len(a) for a in arrays]} and "
                           f"{sum(len(g) for g in groups)}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        rows = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
        values.append(statistic(*(a[rows] for a in arrays)))
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return ConfidenceInterval(float(statistic(*arrays)), float(low), float(high), confidence)
