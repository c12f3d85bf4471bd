"""Paired synthetic activations with planted shared, A-only and B-only feature directions."""

from __future__ import annotations

import torch


class PlantedPair:
    """x_A = sum over firing shared and A-only features of f_i u_i^A; x_B likewise with B-only; shared u^A = u^B."""

    def __init__(self, d: int = 16, shared: int = 20, only: int = 6, p: float = 0.06, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.d, self.shared, self.only, self.p, self.seed = d, shared, only, p, seed
        n = shared + 2 * only
        directions = torch.randn(n, d, generator=g)
        self.directions = directions / directions.norm(dim=1, keepdim=True)  # [n, d]
        self.in_a = torch.zeros(n, dtype=torch.bool)
        self.in_b = torch.zeros(n, dtype=torch.bool)
        self.in_a[:shared + only] = True
        self.in_b[:shared] = True
        self.in_b[shared + only:] = True

    def sample(self, n: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(paired activations [n, 2, d], feature magnitudes [n, features])."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + step)
        fires = torch.rand(n, self.in_a.numel(), generator=g) < self.p
        f = fires * (0.5 + torch.rand(n, self.in_a.numel(), generator=g))
        x_a = (f * self.in_a) @ self.directions
        x_b = (f * self.in_b) @ self.directions
        return torch.stack([x_a, x_b], dim=1), f

    def batches(self, batch_size: int):
        step = 0
        while True:
            yield self.sample(batch_size, step)[0].flatten(1)
            step += 1
