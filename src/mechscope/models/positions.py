"""Which token positions the running forward pass covers, readable from inside a hook, and edits scoped to them.

A forward pass over a left-padded batch, or one decoding step over a KV cache, covers different
positions of each row's text. `Positions` says which: hooks read it with `model.positions` (or
`current()`), and `scoped` turns an edit into one that touches only prompt, generated or chosen
positions, so an intervention means the same with and without the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.errors import MechscopeError

HookFn = Callable[[Tensor, str], "Tensor | None"]
Scope = "str | Collection[int]"  # "prompt" | "generated" | "all" | absolute positions
SCOPES = ("prompt", "generated", "all")


@dataclass(frozen=True)
class Positions:
    """The positions one forward call covers; padding has absolute position -1."""

    absolute: Tensor  # [batch, pos] index of each token within its row's text (padding excluded)
    is_prompt: Tensor  # [batch, pos] bool: the token came from the input, not from generation

    @classmethod
    def of_prompt(cls, attention_mask: Tensor) -> Positions:
        """Positions of a plain forward pass: every real token is a prompt token (left or right padding)."""
        real = attention_mask.bool()
        absolute = torch.where(real, attention_mask.long().cumsum(-1) - 1, -1)
        return cls(absolute=absolute, is_prompt=real)

    @property
    def is_generated(self) -> Tensor:  # [batch, pos]
        return (self.absolute >= 0) & ~self.is_prompt

    def mask(self, where: Scope) -> Tensor:
        """Bool [batch, pos]: the positions that `where` selects among those this call covers."""
        if isinstance(check_scope(where), str):
            if where == "prompt":
                return self.is_prompt
            return self.is_generated if where == "generated" else self.absolute >= 0
        chosen = torch.as_tensor(sorted(where), dtype=torch.long, device=self.absolute.device)
        return torch.isin(self.absolute, chosen)


def check_scope(where: Scope) -> Scope:
    """`where` itself, or an error naming the scopes there are."""
    if isinstance(where, str) and where not in SCOPES:
        raise MechscopeError(f"scope must be one of {SCOPES} or a collection of absolute positions; got {where!r}")
    return where


_CURRENT: ContextVar[Positions | None] = ContextVar("mechscope_positions", default=None)


def current() -> Positions:
    """The positions of the forward pass running in this thread (call it from inside a hook)."""
    positions = _CURRENT.get()
    if positions is None:
        raise MechscopeError("no forward pass is running: positions are only known inside a hook function")
    return positions


@contextmanager
def covering(positions: Positions, replace: bool = True) -> Iterator[Positions]:
    """Make `positions` current for the block; with replace=False an enclosing context wins."""
    if not replace and _CURRENT.get() is not None:
        yield _CURRENT.get()
        return
    token = _CURRENT.set(positions)
    try:
        yield positions
    finally:
        _CURRENT.reset(token)


def scoped(edit: HookFn, where: Scope) -> HookFn:
    """A hook function applying `edit` only at the positions `where` selects: "prompt", "generated", "all" or
    a collection of absolute positions. `edit` gets a copy of the activation and may change it in place."""
    check_scope(where)

    def hook(act: Tensor, name: str) -> Tensor:
        copy = act.clone()
        new = edit(copy, name)
        new = copy if new is None else new
        mask = current().mask(where)  # [batch, pos]
        pos_dim = 2 if name.endswith("hook_pattern") else 1  # patterns are [batch, head, query, key]
        shape = [1] * act.ndim
        shape[0], shape[pos_dim] = mask.shape
        return torch.where(mask.view(shape), new, act)
    return hook
