"""Per-latent weight-based facts: logit weights through the unembedding, and decoder-cosine neighbours.

Logit weights are W_dec @ diag(gamma) @ W_U^T, gamma being the final norm's elementwise scale (the
normalisation itself scales every direction alike and its bias adds the same to every latent, so
neither changes which tokens a latent promotes). Both are computed in blocks of latents, so memory
stays bounded at 100k+ latents.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models.unembedding import unembedding

RESIDUAL_HOOKS = ("hook_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                  "hook_mlp_out")
BLOCK_ELEMENTS = 2**25  # floats per block of a [latents, width] product (128 MiB in fp32)


def logit_weights(model, W_dec: Tensor, hook: str, top: int) -> dict:
    """Top promoted and suppressed tokens per latent: ids and weights [d_sae, top] each, plus the method used."""
    if not hook.endswith(RESIDUAL_HOOKS):
        return {"method": f"none: {hook} is not in the residual stream, so its decoder rows have no logit effect"}
    W_U, scale, method = unembedding(model)
    if W_dec.shape[1] != W_U.shape[1]:
        raise MechscopeError(f"decoder rows have width {W_dec.shape[1]}, the unembedding expects {W_U.shape[1]}")
    W_U = W_U.detach().to(W_dec.device, torch.float32)
    top = min(top, W_U.shape[0])
    out = {"method": method, "top_ids": [], "top_values": [], "bottom_ids": [], "bottom_values": []}
    block = max(1, BLOCK_ELEMENTS // W_U.shape[0])
    with torch.no_grad():
        for first in range(0, W_dec.shape[0], block):
            rows = W_dec[first:first + block].float()
            logits = (rows * scale.to(rows.device) if scale is not None else rows) @ W_U.T
            high, low = logits.topk(top, dim=1), logits.topk(top, dim=1, largest=False)
            out["top_ids"].append(high.indices.cpu())
            out["top_values"].append(high.values.cpu())
            out["bottom_ids"].append(low.indices.cpu())
            out["bottom_values"].append(low.values.cpu())
    return {k: torch.cat(v).numpy() if isinstance(v, list) else v for k, v in out.items()}


def decoder_neighbours(W_dec: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The n latents with the most similar decoder directions (cosine) per latent: (ids, cosines) [d_sae, n]."""
    with torch.no_grad():
        unit = W_dec.float() / W_dec.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
        n = min(n, unit.shape[0] - 1)
        ids, values = [], []
        block = max(1, BLOCK_ELEMENTS // unit.shape[0])
        for first in range(0, unit.shape[0], block):
            sims = unit[first:first + block] @ unit.T
            rows = torch.arange(sims.shape[0], device=sims.device)
            sims[rows, rows + first] = float("-inf")
            best = sims.topk(n, dim=1)
            ids.append(best.indices.cpu())
            values.append(best.values.cpu())
    return torch.cat(ids), torch.cat(values)
