"""A seeded pseudo-random permutation of [0, n) computed index by index (Feistel + cycle walking).

It shuffles globally across every shard with O(1) memory and lets an iterator resume from any
position exactly, which a materialised randperm of 10^9 indices could not do cheaply.
"""

from __future__ import annotations

import torch

_ROUNDS = 4
_MASK64 = (1 << 63) - 1


def _round_keys(seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 2**31 - 1, (_ROUNDS,), generator=g).tolist()


def _mix(x: torch.Tensor, key: int, bits: int) -> torch.Tensor:
    """A cheap integer hash of the right half (splitmix-style multiply/xor-shift), truncated to `bits`."""
    x = (x ^ key) * 0x9E3779B1 & _MASK64
    x = (x ^ (x >> 15)) * 0x85EBCA77 & _MASK64
    x = x ^ (x >> 13)
    return x & ((1 << bits) - 1)


def permute(index: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """perm(index) for a bijection perm of [0, n) fixed by `seed`; index is an int64 tensor."""
    if n <= 1:
        return index.clone()
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    keys = _round_keys(seed)
    x = index.to(torch.int64).clone()
    todo = torch.ones_like(x, dtype=torch.bool)
    while todo.any():  # cycle-walk values that land outside [0, n) until they fall inside
        left, right = x[todo] >> half, x[todo] & mask
        for key in keys:
            left, right = right, left ^ _mix(right, key, half)
        x[todo] = (left << half) | right
        todo = x >= n
    return x
