"""The variant interface and the loss pieces variants share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.dictionaries.config import DictionaryConfig


@dataclass
class StepContext:
    """What the trainer tells a variant about the current step."""

    variance: float  # fixed per-token total variance of the (normalised) inputs: E||x - E x||^2
    sparsity_scale: float = 1.0  # warm-up factor on the sparsity coefficient
    dead_mask: Tensor | None = None  # [d_sae] latents that have not fired for too long


class Variant:
    """Activation function and training loss of one dictionary architecture."""

    unit_norm_decoder = True  # keep decoder rows at unit norm during training
    sparse = False  # its codes are few per token: training runs the sparse kernels

    def __init__(self, cfg: DictionaryConfig):
        self.cfg = cfg

    def add_parameters(self, d) -> None:
        """Register parameters or buffers beyond W_enc, b_enc, W_dec, b_dec."""

    def init_parameters(self, d) -> None:
        """Initialise them (called after the shared initialisation)."""

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        """Dense inference codes from pre-activations."""
        raise NotImplementedError

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """Training loss terms; must include total, recon, l0 and fired ([d_sae] bool)."""
        raise NotImplementedError

    def after_step(self, d, terms: dict[str, Tensor]) -> None:
        """Update running state (e.g. an inference threshold) after an optimiser step."""


def squared_error(x: Tensor, x_hat: Tensor) -> Tensor:
    """Sum over the batch of ||x - x_hat||^2."""
    return (x_hat - x).pow(2).sum()


def batch_fvu(x: Tensor, x_hat: Tensor) -> Tensor:
    """Fraction of variance unexplained in this batch, variance about the batch mean (for logging)."""
    return squared_error(x, x_hat).detach() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def dense_terms(d, x_in: Tensor, codes: Tensor, x_hat: Tensor, sparsity: Tensor, ctx: StepContext,
                extra: Tensor | None = None) -> dict[str, Tensor]:
    """Loss terms of the L1-style variants: recon = mean_b ||x - x_hat||^2 (the papers' form)."""
    recon = squared_error(x_in, x_hat) / x_in.shape[0]
    total = recon + ctx.sparsity_scale * sparsity + (extra if extra is not None else 0)
    active = codes > 0
    return {"total": total, "recon": recon.detach(), "sparsity": sparsity.detach(),
            "aux": (extra.detach() if extra is not None else torch.zeros(())),
            "l0": active.sum(-1).float().mean(), "fvu": batch_fvu(x_in, x_hat), "fired": active.any(0)}
