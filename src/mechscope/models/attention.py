"""Attention patterns as a hook point, without re-implementing any family's attention.

While a pattern hook is active the model runs an attention implementation registered with
transformers' AttentionInterface that calls the family's own eager attention (so the numbers are
HF's) and hands the probabilities to the hook. A replaced pattern is mixed with the values again,
the one step every family's eager attention shares: `pattern @ values`, heads moved back to dim 2.
"""

from __future__ import annotations

import sys
from typing import Callable
from weakref import WeakKeyDictionary

import torch
from torch import nn

IMPLEMENTATION = "mechscope_eager"

PatternCallback = Callable[[torch.Tensor], "torch.Tensor | None"]
# attention module -> callbacks run in order; each sees the pattern left by the one before
_PATTERN_HOOKS: WeakKeyDictionary[nn.Module, list[PatternCallback]] = WeakKeyDictionary()


def _hooked_eager_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    attn_output, pattern = eager(module, query, key, value, attention_mask, **kwargs)
    replaced = False
    for callback in _PATTERN_HOOKS.get(module, ()):
        new = callback(pattern)
        if new is not None:
            pattern, replaced = new, True
    if not replaced:
        return attn_output, pattern
    n_rep = pattern.shape[1] // value.shape[1]  # grouped-query attention shares values across heads
    values = value.repeat_interleave(n_rep, dim=1) if n_rep > 1 else value
    attn_output = torch.matmul(pattern.to(values.dtype), values).transpose(1, 2).contiguous()
    return attn_output, pattern


def register_implementation() -> None:
    """Make "mechscope_eager" a valid attn_implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(IMPLEMENTATION, _hooked_eager_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])


class PatternHandle:
    """Removes one pattern callback, like torch's RemovableHandle does for module hooks."""

    def __init__(self, module: nn.Module, callback: PatternCallback):
        self.module, self.callback = module, callback
        _PATTERN_HOOKS.setdefault(module, []).append(callback)

    def remove(self) -> None:
        callbacks = _PATTERN_HOOKS.get(self.module, [])
        if self.callback in callbacks:
            callbacks.remove(self.callback)
