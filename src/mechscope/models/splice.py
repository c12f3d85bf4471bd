"""Splicing: a hook function that replaces a hook's activations with a function of them."""

from __future__ import annotations

from torch import Tensor


def splice_fn(replacement):
    """A hook function replacing [batch, pos, ...] activations with replacement(flat [n, d]) reshaped back."""
    def fn(act: Tensor, name: str) -> Tensor:
        flat = act.reshape(act.shape[0] * act.shape[1], -1)
        return replacement(flat).reshape(act.shape).to(act.dtype)
    return fn
