"""The unembedding W_U and the final norm's elementwise scale, read off any HF model."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def norm_scale(norm: nn.Module, d_model: int) -> Tensor:
    """The elementwise scale gamma of a LayerNorm / RMSNorm (any parameterisation, e.g. Gemma's 1 + w),
    found by probing it with zero-mean, unit-RMS inputs: norm(x) - norm(0) = gamma * x."""
    param = next(norm.parameters(), None)
    device = param.device if param is not None else "cpu"
    dtype = param.dtype if param is not None else torch.float32
    signs = torch.ones(d_model, device=device)
    signs[1::2] = -1
    if d_model % 2:
        signs[-1] = 0
    gamma = torch.zeros(d_model, device=device)
    with torch.no_grad():
        zero = norm(torch.zeros(1, d_model, device=device, dtype=dtype)).float()[0]
        for probe in (signs, signs.roll(1)):  # every dimension is non-zero in one of the two probes
            x = probe / probe.pow(2).mean().sqrt()
            out = (norm(x[None].to(dtype)).float()[0] - zero) / torch.where(x == 0, 1.0, x)
            gamma = torch.where(x != 0, out, gamma)
    return gamma


def unembedding(model) -> tuple[Tensor, Tensor | None, str]:
    """(W_U [vocab, d_model], final-norm scale or None, what was used): the LM head where the model has one,
    else the token embedding (encoders such as MiniLM have no unembedding)."""
    head = model.hf.get_output_embeddings()
    if head is None:
        embedding = model.root.get_submodule(model.family.embed).weight
        return embedding, None, "token embedding (the model has no unembedding)"
    family = model.family
    scale = None
    if family.final_norm is not None:
        scale = norm_scale(model.root.get_submodule(family.final_norm), model.info.d_model)
    return head.weight, scale, "unembedding" + (" with the final norm's scale folded in" if scale is not None else "")
