"""Toy models of superposition (Elhage et al. 2022): n sparse features squeezed through m < n dimensions.

x' = ReLU(W^T W x + b), loss = sum_i importance_i (x_i - x'_i)^2. Many instances (one feature
probability each, or repeated seeds) train side by side as one batched model, as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class ToyConfig:
    n_features: int = 20
    m: int = 5
    feature_probability: list[float] = field(default_factory=lambda: [1.0])  # one per instance; S = 1 - p
    importance_decay: float = 1.0  # importance_i = decay ** i
    steps: int = 10_000
    batch_size: int = 1024
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        bad = [p for p in self.feature_probability if not 0 < p <= 1]
        if bad or self.m < 1 or self.n_features < 1:
            raise ValueError(f"feature_probability values must lie in (0, 1] and n_features, m be positive; got "
                             f"{bad or self.feature_probability}, n={self.n_features}, m={self.m}")

    @property
    def instances(self) -> int:
        return len(self.feature_probability)


class ToyModel(nn.Module):
    """W [instances, m, n_features], b [instances, n_features]."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        generator = torch.Generator().manual_seed(cfg.seed)
        w = torch.empty(cfg.instances, cfg.m, cfg.n_features)
        for i in range(cfg.instances):
            bound = (6 / (cfg.m + cfg.n_features)) ** 0.5  # Xavier-uniform, as in the paper's code
            w[i] = (torch.rand(cfg.m, cfg.n_features, generator=generator) * 2 - 1) * bound
        self.W = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(cfg.instances, cfg.n_features))
        self.register_buffer("importance", cfg.importance_decay ** torch.arange(cfg.n_features).float())
        self.register_buffer("probability", torch.tensor(cfg.feature_probability))

    def forward(self, x: Tensor) -> Tensor:  # x [instances, batch, n]
        hidden = torch.bmm(x, self.W.transpose(1, 2))  # [instances, batch, m]
        return torch.relu(torch.bmm(hidden, self.W) + self.b[:, None, :])

    def sample(self, generator: torch.Generator) -> Tensor:
        """Each feature is present with probability p and then uniform in [0, 1): one draw gives both,
        since u < p happens with probability p and u / p is then uniform."""
        u = torch.rand(self.cfg.instances, self.cfg.batch_size, self.cfg.n_features, generator=generator)
        p = self.probability[:, None, None]
        return torch.where(u < p, u / p, torch.zeros((), dtype=u.dtype))

    def loss(self, x: Tensor) -> Tensor:
        return (self.importance * (x - self(x)).pow(2)).mean(1).sum()


def train_toy(cfg: ToyConfig) -> ToyModel:
    """Train every instance at once with AdamW (the paper's set-up: batch 1024, lr 1e-3)."""
    model = ToyModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(cfg.steps):
        optimizer.zero_grad(set_to_none=True)
        model.loss(model.sample(generator)).backward()
        optimizer.step()
    return model


def feature_norms(model: ToyModel) -> Tensor:
    """||W_i|| per instance and feature [instances, n]: ~1 represented, ~0 ignored."""
    return model.W.detach().norm(dim=1)


def dimensions_per_feature(model: ToyModel) -> Tensor:
    """D* = m / ||W||_F^2 per instance: 1 without superposition, 1/2 for antipodal pairs, 2/5 pentagons."""
    return model.cfg.m / model.W.detach().pow(2).sum(dim=(1, 2))


def feature_dimensionality(model: ToyModel) -> Tensor:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 per instance and feature [instances, n]."""
    w = model.W.detach()
    norms = w.norm(dim=1, keepdim=True)
    unit = w / norms.clamp_min(1e-12)
    overlaps = torch.einsum("imn,imk->ink", unit, w).pow(2).sum(-1)
    return norms.squeeze(1).pow(2) / overlaps.clamp_min(1e-12)


def gram(model: ToyModel, instance: int = 0) -> Tensor:
    """W^T W [n, n] of one instance: what the paper draws to show which features interfere."""
    w = model.W.detach()[instance]
    return w.T @ w
