"""Deterministic hashes: which split a context window belongs to, and token hashes for MinHash."""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """SplitMix64 of each value (uint64 arithmetic wraps by design): a fast, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + _GOLDEN * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def is_test_window(windows: np.ndarray, test_fraction: float, seed: int = 0) -> np.ndarray:
    """True for windows held out for scoring: decided by a hash of the window number, so the splits are disjoint
    by construction."""
    unit = (splitmix64(windows, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return unit < test_fraction


def token_hashes(windows: np.ndarray, positions: np.ndarray, context: int, seed: int = 0) -> np.ndarray:
    """A non-negative int64 hash per token, identified by (window, position)."""
    ids = np.asarray(windows, dtype=np.uint64) * np.uint64(context) + np.asarray(positions, dtype=np.uint64)
    return (splitmix64(ids, seed + 1) >> np.uint64(1)).astype(np.int64)
