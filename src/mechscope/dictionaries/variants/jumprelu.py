"""JumpReLU SAEs (Rajamanoharan et al. 2024): z * H(z - theta) with rectangle-kernel straight-through
estimates for the threshold, trained against an L0 penalty (or a target L0)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mechscope.dictionaries.variants.base import StepContext, Variant, dense_terms


def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """Forward z * H(z - theta); d/dz = H(z - theta); d/dtheta = -(theta / eps) K((z - theta) / eps)."""

    @staticmethod
    def forward(ctx, z, theta, eps):
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        g_z = (z > theta) * grad
        g_theta = (-(theta / ctx.eps) * _rectangle((z - theta) / ctx.eps) * grad).sum(0)
        return g_z, g_theta, None


class _Step(torch.autograd.Function):
    """Forward H(z - theta); no gradient to z; d/dtheta = -(1 / eps) K((z - theta) / eps)."""

    @staticmethod
    def forward(ctx, z, theta, eps):
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        return None, (-(1.0 / ctx.eps) * _rectangle((z - theta) / ctx.eps) * grad).sum(0), None


def jumprelu(z: Tensor, theta: Tensor, eps: float) -> Tensor:
    return _JumpReLU.apply(z, theta, eps)


def step(z: Tensor, theta: Tensor, eps: float) -> Tensor:
    return _Step.apply(z, theta, eps)


class JumpReLU(Variant):
    """Threshold trained as log_threshold; saved (and used at inference) as `threshold`.

    Its sweep knob is the target L0 (penalised as (L0 / target - 1)^2 with coefficient 1).
    """

    hyperparameters = ("l0_coefficient", "target_l0", "jumprelu_bandwidth", "jumprelu_init_threshold")
    saved_tensors = ("threshold",)
    latent_parameters = ("log_threshold",)
    latent_buffers = ("threshold",)
    latent_shardable = True
    step_activations = 5.25  # pre, codes, the step, their gradients

    @classmethod
    def sweep_overrides(cls, value: float) -> dict:
        return {"target_l0": float(value), "l0_coefficient": 1.0}

    def knob_label(self) -> str:
        cfg = self.cfg
        return f"l0-{cfg.target_l0:g}" if cfg.target_l0 else f"lambda-{cfg.l0_coefficient:g}"

    def add_parameters(self, d) -> None:
        d.log_threshold = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))
        d.register_buffer("threshold", torch.zeros(d.d_sae, device=d.W_enc.device))

    def init_parameters(self, d) -> None:
        d.log_threshold.data.fill_(math.log(self.cfg.jumprelu_init_threshold))
        self.after_step(d, {})

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        return pre * (pre > d.threshold)

    @torch.no_grad()
    def after_step(self, d, terms: dict[str, Tensor]) -> None:
        """Inference reads the exact `threshold` buffer (what files store), kept equal to exp(log_threshold)."""
        d.threshold.copy_(d.log_threshold.exp())

    @torch.no_grad()
    def after_load(self, d) -> None:
        d.log_threshold.copy_(d.threshold.clamp_min(1e-30).log())

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        pre = d.pre_activations(x_in)
        theta = d.log_threshold.exp()
        codes = jumprelu(pre, theta, self.cfg.jumprelu_bandwidth)
        x_hat = d.latent_sum(codes @ d.W_dec) + d.offset(x_in)
        l0 = d.latent_sum(step(pre, theta, self.cfg.jumprelu_bandwidth).sum(-1).mean())
        if self.cfg.target_l0:
            sparsity = self.cfg.l0_coefficient * (l0 / self.cfg.target_l0 - 1).pow(2)
        else:
            sparsity = self.cfg.l0_coefficient * l0
        return dense_terms(d, ctx.target_for(x_in), codes, x_hat, sparsity, ctx)
