"""Module hooks that run in the hook points' firing order, whenever each was registered.

Several points share a module (resid_mid and mlp_in read the same norm's input; q_input and q the same
projection), and a point that fires earlier must see the tensor before a later one replaces it, also
when the later one was attached first (an outer `hooks()` block around `run_with_cache`). Each module
gets one torch pre-hook and one forward hook that run their callbacks sorted by (rank, registration).
"""

from __future__ import annotations

import bisect
import itertools
from typing import Callable
from weakref import WeakKeyDictionary

from torch import nn

# pre:  callback(args, kwargs) -> (args, kwargs) or None;   post: callback(args, output) -> output or None
_SLOTS: WeakKeyDictionary[nn.Module, dict[str, tuple[list, object]]] = WeakKeyDictionary()
_SEQUENCE = itertools.count()


def _run_pre(callbacks: list, _module, args, kwargs):
    changed = False
    for *_, callback in list(callbacks):
        new = callback(args, kwargs)
        if new is not None:
            (args, kwargs), changed = new, True
    return (args, kwargs) if changed else None


def _run_post(callbacks: list, _module, args, output):
    changed = False
    for *_, callback in list(callbacks):
        new = callback(args, output)
        if new is not None:
            output, changed = new, True
    return output if changed else None


class OrderedHandle:
    """One callback at a module's input ("pre") or output ("post"), at position `rank` among the others."""

    def __init__(self, module: nn.Module, moment: str, rank: int, callback: Callable):
        self.module, self.moment = module, moment
        self.entry = (rank, next(_SEQUENCE), callback)
        slots = _SLOTS.setdefault(module, {})
        if moment not in slots:
            callbacks: list = []
            if moment == "pre":
                torch_handle = module.register_forward_pre_hook(
                    lambda m, args, kwargs: _run_pre(callbacks, m, args, kwargs), with_kwargs=True)
            else:
                torch_handle = module.register_forward_hook(lambda m, args, out: _run_post(callbacks, m, args, out))
            slots[moment] = (callbacks, torch_handle)
        bisect.insort(slots[moment][0], self.entry, key=lambda entry: entry[:2])

    def remove(self) -> None:
        slots = _SLOTS.get(self.module, {})
        if self.moment not in slots or self.entry not in slots[self.moment][0]:
            return
        callbacks, torch_handle = slots[self.moment]
        callbacks.remove(self.entry)
        if not callbacks:
            torch_handle.remove()
            del slots[self.moment]
