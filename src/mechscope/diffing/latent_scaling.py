"""Latent Scaling (Minder et al. 2025): how much of each latent's direction each model really carries.

For latent j with owner side o (where its decoder is larger) and decoder vector v = d_j^o, fit a scalar
beta minimising sum_i ||beta f_j(x_i) v - y_i||^2 in each model m, closed form
beta = sum_i f_j(x_i) <v, y_i> / (||v||^2 sum_i f_j(x_i)^2), against two targets:
the reconstruction y = x_hat_m, and the error without the latent y = x_m - (x_hat_m - f_j d_j^m).
nu_r = beta_r(other) / beta_r(owner), nu_e = beta_e(other) / beta_e(owner): near 0 for a latent that is
truly specific to its owner, near 1 for a shared one; an L1 artefact shows nu_e or nu_r well above 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.dictionaries.crosscoder import decode_sources, encode_sources, source_decoder, source_decoder_norms


@dataclass
class LatentScaling:
    """Betas [d_sae, 2] (column m: model m) for both targets, each latent's owner side and active-token count."""

    beta_reconstruction: Tensor
    beta_error: Tensor
    owner: Tensor  # [d_sae] 0 (A) or 1 (B)
    active: Tensor  # [d_sae] tokens where the latent fired

    def _ratio(self, betas: Tensor) -> Tensor:
        own = betas.gather(1, self.owner[:, None])[:, 0]
        other = betas.gather(1, (1 - self.owner)[:, None])[:, 0]
        return other / own.abs().clamp_min(1e-12)

    @property
    def nu_reconstruction(self) -> Tensor:
        return self._ratio(self.beta_reconstruction)

    @property
    def nu_error(self) -> Tensor:
        return self._ratio(self.beta_error)

    def truly_specific(self, nu_r_max: float = 0.5, nu_e_max: float = 0.2) -> Tensor:
        """[d_sae] bool: both ratios small (the cut-offs Minder et al. use for chat-only latents)."""
        return (self.nu_reconstruction < nu_r_max) & (self.nu_error < nu_e_max) & (self.active > 0)


@torch.no_grad()
def latent_scaling(d, batches: Iterable[Tensor]) -> LatentScaling:
    """Betas of every latent of a two-source crosscoder over paired activations, batches [n, 2, d_source]."""
    decoder = source_decoder(d).detach()  # [d_sae, 2, d]
    owner = source_decoder_norms(d).argmax(dim=1)
    v = decoder[torch.arange(d.d_sae), owner]  # [d_sae, d]
    toward_recon = torch.zeros(d.d_sae, 2, dtype=torch.float64)
    toward_error = torch.zeros(d.d_sae, 2, dtype=torch.float64)
    squares = torch.zeros(d.d_sae, dtype=torch.float64)
    active = torch.zeros(d.d_sae, dtype=torch.long)
    for x in batches:
        x = x.to(d.W_enc.device, torch.float32)
        codes = encode_sources(d, x)  # [n, d_sae]
        x_hat = decode_sources(d, codes)  # [n, 2, d]
        for m in range(2):
            toward_recon[:, m] += ((codes.T @ x_hat[:, m]) * v).sum(-1).double().cpu()
            toward_error[:, m] += ((codes.T @ (x[:, m] - x_hat[:, m])) * v).sum(-1).double().cpu()
        squares += codes.pow(2).sum(0).double().cpu()
        active += (codes > 0).sum(0).cpu()
    denominator = (v.pow(2).sum(-1).double().cpu() * squares).clamp_min(1e-12)[:, None]
    self_overlap = (decoder * v[:, None]).sum(-1).double().cpu()  # [d_sae, 2] <d_j^m, v>
    beta_error = (toward_error + self_overlap * squares[:, None]) / denominator
    return LatentScaling((toward_recon / denominator).float(), beta_error.float(), owner.cpu(), active)
