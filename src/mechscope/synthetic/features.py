"""Synthetic activations from known sparse feature directions (Sharkey et al. 2022 style).

Ground truth for dictionary learning: a dictionary that works recovers `directions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SyntheticFeatures:
    """n_features unit directions in d dims; each sample superposes ~`active` of them.

    Feature i fires with probability proportional to (i + 1)^-decay (power-law frequencies), scaled so
    the expected number active is `active`; magnitudes are "uniform" in [0, 1] or "exponential" (mean 1);
    optional Gaussian noise. Correlated groups: the first `correlated_groups` blocks of `group_size`
    features fire together (the block's first feature triggers the others).
    """

    n_features: int = 512
    d: int = 256
    active: float = 5.0
    decay: float = 0.5
    magnitude: str = "uniform"
    noise: float = 0.0
    correlated_groups: int = 0
    group_size: int = 2
    seed: int = 0

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        directions = torch.randn(self.n_features, self.d, generator=g)
        self.directions = directions / directions.norm(dim=1, keepdim=True)  # [n_features, d]
        weights = (torch.arange(self.n_features) + 1.0).pow(-self.decay)
        self.probabilities = (weights / weights.sum() * self.active).clamp(max=1.0)

    def sample(self, batch: int, step: int = 0) -> tuple[Tensor, Tensor]:
        """(activations [batch, d], true codes [batch, n_features]); batch `step` is always the same."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 1)
        fires = torch.rand(batch, self.n_features, generator=g) < self.probabilities
        for group in range(self.correlated_groups):
            lead = group * self.group_size
            fires[:, lead + 1:lead + self.group_size] |= fires[:, lead:lead + 1]
        if self.magnitude == "exponential":
            magnitudes = torch.empty(batch, self.n_features).exponential_(generator=g)
        elif self.magnitude == "uniform":
            magnitudes = torch.rand(batch, self.n_features, generator=g)
        else:
            raise ValueError(f"magnitude must be 'uniform' or 'exponential', got {self.magnitude!r}")
        codes = fires * magnitudes
        x = codes @ self.directions
        if self.noise:
            x = x + self.noise * torch.randn(batch, self.d, generator=g)
        return x, codes

    def batches(self, batch_size: int, start: int = 0, seed: int = 0) -> Iterator[Tensor]:
        """Endless batches; batch b is a pure function of (self.seed, b), so resuming is exact."""
        step = start
        while True:
            yield self.sample(batch_size, step)[0]
            step += 1

