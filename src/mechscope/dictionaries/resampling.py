"""Anthropic's dead-neuron resampling (Towards Monosemanticity, 2023) for the classic ReLU SAE."""

from __future__ import annotations

import torch


@torch.no_grad()
def resample_dead(d, optimizer: torch.optim.Optimizer, x: torch.Tensor, dead: torch.Tensor, step: int) -> int:
    """Point each dead latent at an input it reconstructs badly; returns how many were resampled.

    Inputs are drawn with probability proportional to their squared reconstruction loss; the decoder
    row becomes the normalised input, the encoder column the same direction scaled to 0.2x the mean
    alive encoder norm, the bias zero, and Adam's moments for those entries are reset.
    """
    idx = dead.nonzero().squeeze(1)
    if idx.numel() == 0:
        return 0
    loss = (d(x) - x).pow(2).sum(-1)
    generator = torch.Generator(device="cpu").manual_seed(step)
    picks = torch.multinomial((loss.square() + 1e-12).cpu(), idx.numel(), replacement=True, generator=generator)
    chosen = x[picks.to(x.device)] - (d.b_dec if d.cfg.apply_b_dec_to_input else 0)
    directions = chosen / chosen.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alive = ~dead
    enc_norm = d.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
    d.W_dec[idx] = directions
    d.W_enc[:, idx] = (directions * 0.2 * enc_norm).T
    d.b_enc[idx] = 0.0
    for param, rows in ((d.W_dec, (idx,)), (d.W_enc, (slice(None), idx)), (d.b_enc, (idx,))):
        state = optimizer.state.get(param)
        if state:
            state["exp_avg"][rows] = 0.0
            state["exp_avg_sq"][rows] = 0.0
    return int(idx.numel())
