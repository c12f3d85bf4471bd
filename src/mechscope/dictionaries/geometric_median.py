"""Geometric median (Weiszfeld's algorithm): the b_dec initialisation robust to outlying activations."""

from __future__ import annotations

from torch import Tensor


def geometric_median(points: Tensor, iterations: int = 100, tol: float = 1e-6) -> Tensor:
    """The point minimising the sum of Euclidean distances to `points` [n, d]."""
    median = points.mean(0)
    for _ in range(iterations):
        distances = (points - median).norm(dim=1).clamp_min(1e-8)
        weights = 1.0 / distances
        new = (weights[:, None] * points).sum(0) / weights.sum()
        if (new - median).norm() <= tol * max(median.norm().item(), 1.0):
            return new
        median = new
    return median
