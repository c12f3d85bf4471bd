"""Universal features: match the latents of two dictionaries by how their activations correlate on the same tokens.

Each latent of A gets its best Pearson correlation with any latent of B, and a one-to-one assignment
(Hungarian, scipy's linear_sum_assignment) pairs latents across the two; the fraction of A's latents whose
match reaches a threshold is compared with a permutation baseline that shuffles the tokens of B's side,
which keeps every marginal and destroys only the token-for-token correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mechscope.errors import MechscopeError


@dataclass
class UniversalConfig:
    """How latents are matched and what counts as shared."""

    threshold: float = 0.5  # a latent is shared when its best match has Pearson r at least this
    tokens: int = 50_000  # tokens compared (the first ones of the source)
    batch_size: int = 4096
    min_active: int = 5  # latents firing on fewer of the tokens are left out (a dead latent has no correlation)
    seed: int = 0  # of the baseline's token permutation


@dataclass
class FeatureMatch:
    """Correlations of A's latents with B's on aligned tokens, and with B's tokens shuffled."""

    correlation: Tensor  # [alive_a, alive_b] Pearson r
    baseline: Tensor  # [alive_a, alive_b] with B's tokens permuted
    alive_a: Tensor  # [n_alive_a] latent indices
    alive_b: Tensor
    threshold: float

    @property
    def best(self) -> Tensor:
        return self.correlation.max(dim=1).values

    def assignment(self, correlation: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One-to-one pairs (A latent, B latent, r) maximising the summed correlation."""
        c = self.correlation if correlation is None else correlation
        rows, cols = linear_sum_assignment(-c.numpy())
        return self.alive_a[rows], self.alive_b[cols], c[rows, cols]

    def summary(self) -> dict:
        assigned = self.assignment()[2]
        baseline_assigned = self.assignment(self.baseline)[2]
        return {"alive_a": int(self.alive_a.numel()), "alive_b": int(self.alive_b.numel()),
                "threshold": self.threshold,
                "shared_fraction": float((self.best >= self.threshold).float().mean()),
                "baseline_shared_fraction": float((self.baseline.max(dim=1).values >= self.threshold).float().mean()),
                "mean_max_correlation": float(self.best.mean()),
                "baseline_mean_max_correlation": float(self.baseline.max(dim=1).values.mean()),
                "assignment_mean_correlation": float(assigned.mean()),
                "baseline_assignment_mean_correlation": float(baseline_assigned.mean()),
                "assigned_above_threshold": int((assigned >= self.threshold).sum())}


class _PearsonSums:
    """Streaming sums for the Pearson correlation of every column of one matrix with every column of another."""

    def __init__(self, width_a: int, width_b: int):
        self.n = 0
        self.sa, self.sb = torch.zeros(width_a, dtype=torch.float64), torch.zeros(width_b, dtype=torch.float64)
        self.saa, self.sbb = torch.zeros_like(self.sa), torch.zeros_like(self.sb)
        self.sab = torch.zeros(width_a, width_b, dtype=torch.float64)

    def add(self, a: Tensor, b: Tensor) -> None:
        a, b = a.double().cpu(), b.double().cpu()
        self.n += a.shape[0]
        self.sa += a.sum(0)
        self.sb += b.sum(0)
        self.saa += a.pow(2).sum(0)
        self.sbb += b.pow(2).sum(0)
        self.sab += a.T @ b

    def correlation(self) -> Tensor:
        cov = self.sab / self.n - torch.outer(self.sa, self.sb) / self.n**2
        std_a = (self.saa / self.n - (self.sa / self.n) ** 2).clamp_min(1e-12).sqrt()
        std_b = (self.sbb / self.n - (self.sb / self.n) ** 2).clamp_min(1e-12).sqrt()
        return (cov / torch.outer(std_a, std_b)).float()


@torch.no_grad()
def match_features(dict_a, dict_b, acts_a: Tensor, acts_b: Tensor, cfg: UniversalConfig | None = None) -> FeatureMatch:
    """Match latents of `dict_a` (reading acts_a [n, d_a]) and `dict_b` (reading acts_b [n, d_b]), row i of
    both being the same token."""
    cfg = cfg or UniversalConfig()
    if acts_a.shape[0] != acts_b.shape[0]:
        raise MechscopeError(f"matching needs the same tokens on both sides; got {acts_a.shape[0]} and "
                             f"{acts_b.shape[0]} rows")
    n = min(acts_a.shape[0], cfg.tokens)
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    aligned, shuffled = _PearsonSums(dict_a.d_sae, dict_b.d_sae), _PearsonSums(dict_a.d_sae, dict_b.d_sae)
    fired_a = torch.zeros(dict_a.d_sae, dtype=torch.long)
    fired_b = torch.zeros(dict_b.d_sae, dtype=torch.long)
    for start in range(0, n, cfg.batch_size):
        rows = torch.arange(start, min(start + cfg.batch_size, n))
        codes_a = dict_a.encode(acts_a[rows].to(dict_a.W_enc.device, torch.float32))
        codes_b = dict_b.encode(acts_b[rows].to(dict_b.W_enc.device, torch.float32))
        codes_b_shuffled = dict_b.encode(acts_b[permutation[rows]].to(dict_b.W_enc.device, torch.float32))
        aligned.add(codes_a, codes_b)
        shuffled.add(codes_a, codes_b_shuffled)
        fired_a += (codes_a > 0).sum(0).cpu()
        fired_b += (codes_b > 0).sum(0).cpu()
    alive_a = (fired_a >= cfg.min_active).nonzero().flatten()
    alive_b = (fired_b >= cfg.min_active).nonzero().flatten()
    if not alive_a.numel() or not alive_b.numel():
        raise MechscopeError(f"no latents fire at least {cfg.min_active} times on the {n} tokens "
                             f"({alive_a.numel()} of A's, {alive_b.numel()} of B's); give more tokens")
    pick = np.ix_(alive_a.numpy(), alive_b.numpy())
    return FeatureMatch(aligned.correlation()[pick], shuffled.correlation()[pick], alive_a, alive_b, cfg.threshold)
