"""Reconstruction metrics, accumulated over batches and pooled over every token (never averaged per batch).

FVU is E||x - x_hat||^2 / E||x - E[x]||^2: variance about the mean. Taking variance about zero (as
SAELens and SAEBench once did) inflates "explained variance" whenever activations have a large mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

DENSE_FREQUENCY = 0.1  # a latent firing on more than 10% of tokens counts as dense


@dataclass
class ReconstructionStats:
    """Running sums for L0, MSE, FVU, cosine, relative reconstruction bias and latent densities."""

    d_sae: int
    tokens: int = 0
    sq_error: float = 0.0
    sq_norm: float = 0.0
    sum_x: Tensor | None = None
    cosine: float = 0.0
    active: float = 0.0
    recon_sq_norm: float = 0.0
    recon_dot: float = 0.0
    d_in: int = 0
    fires: Tensor = field(default=None)

    def __post_init__(self):
        if self.fires is None:
            self.fires = torch.zeros(self.d_sae, dtype=torch.float64)

    @torch.no_grad()
    def update(self, x: Tensor, x_hat: Tensor, codes: Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.tokens += x.shape[0]
        self.d_in = x.shape[1]
        self.sq_error += (x - x_hat).pow(2).sum().item()
        self.sq_norm += x.pow(2).sum().item()
        self.sum_x = x.sum(0) if self.sum_x is None else self.sum_x + x.sum(0)
        self.cosine += torch.nn.functional.cosine_similarity(x, x_hat, dim=-1).sum().item()
        self.recon_sq_norm += x_hat.pow(2).sum().item()
        self.recon_dot += (x_hat * x).sum().item()
        fired = codes != 0
        self.active += fired.sum().item()
        self.fires += fired.sum(0).double().cpu()

    def result(self) -> dict:
        n = max(self.tokens, 1)
        variance = self.sq_norm - (self.sum_x.pow(2).sum().item() / n if self.sum_x is not None else 0.0)
        frequency = self.fires / n
        alive = frequency[frequency > 0]
        counts, edges = torch.histogram(alive.log10().float(), bins=20, range=(-8.0, 0.0)) if alive.numel() \
            else (torch.zeros(20), torch.linspace(-8, 0, 21))
        return {
            "tokens": self.tokens, "l0": self.active / n, "mse": self.sq_error / (n * max(self.d_in, 1)),
            "fvu": self.sq_error / variance if variance > 0 else math.nan,
            "cosine": self.cosine / n,
            # Gated SAE paper: gamma = argmin E||x_hat / gamma - x||^2 = E||x_hat||^2 / E[x_hat . x]; < 1 shrinks
            "relative_reconstruction_bias": self.recon_sq_norm / self.recon_dot if self.recon_dot else math.nan,
            "dead_fraction": (frequency == 0).double().mean().item(),
            "dense_fraction": (frequency > DENSE_FREQUENCY).double().mean().item(),
            "density_histogram": {"log10_frequency_edges": edges.tolist(), "counts": counts.int().tolist(),
                                  "dead": int((frequency == 0).sum())},
        }


def fraction_of_variance_unexplained(x: Tensor, x_hat: Tensor) -> float:
    """Pooled FVU of one set of activations [n, d] (variance about the mean)."""
    return ((x - x_hat).double().pow(2).sum() / (x - x.mean(0)).double().pow(2).sum()).item()
