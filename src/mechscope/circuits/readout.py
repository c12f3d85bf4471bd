"""How a residual vector becomes logits: the final norm (frozen or live) followed by the unembedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models.unembedding import unembedding
from mechscope.models import HookedModel


@dataclass
class Readout:
    """final_norm(x) = center(x) / scale(x) * gamma + beta, then logits = . @ W_U^T + b_U."""

    norm: torch.nn.Module
    gamma: Tensor  # [d_model]
    beta: Tensor  # [d_model]
    centered: bool  # LayerNorm subtracts the mean; RMSNorm does not
    W_U: Tensor  # [vocab, d_model]
    b_U: Tensor | None  # [vocab]

    def center(self, x: Tensor) -> Tensor:
        return x - x.mean(-1, keepdim=True) if self.centered else x

    def frozen_scale(self, x: Tensor) -> Tensor:
        """The norm's divisor for residuals x [..., d_model], read off the norm itself (eps included)."""
        with torch.no_grad():
            out = self.norm(x.to(self.gamma.dtype)).float() - self.beta
        return ((self.center(x.float()) * self.gamma).norm(dim=-1) / out.norm(dim=-1).clamp_min(1e-30))[..., None]

    def logits(self, x: Tensor) -> Tensor:
        """Live readout (the logit lens): the norm applied to x itself, then the unembedding."""
        with torch.no_grad():
            out = self.norm(x.to(self.W_U.dtype)) @ self.W_U.T
        return out + self.b_U if self.b_U is not None else out


def readout(model: HookedModel) -> Readout:
    """The model's final norm and unembedding; a clear error for models without an LM head (encoders)."""
    head = model.hf.get_output_embeddings()
    if head is None or model.family.final_norm is None:
        raise MechscopeError(f"{model.info.name} has no final norm + unembedding ({model.family.name} family); "
                             "logit attribution needs a causal language model")
    norm = model.root.get_submodule(model.family.final_norm)
    d_model = model.info.d_model
    W_U, gamma, _ = unembedding(model)
    param = head.weight
    with torch.no_grad():
        beta = norm(torch.zeros(1, d_model, device=param.device, dtype=param.dtype)).float()[0]
        constant = norm(torch.full((1, d_model), 3.0, device=param.device, dtype=param.dtype)).float()[0]
    centered = bool(torch.allclose(constant, beta, atol=1e-4))
    bias = getattr(head, "bias", None)
    return Readout(norm, gamma.float(), beta, centered, W_U.detach(), None if bias is None else bias.detach())
