"""Train/test splits by a stable hash: the same on every machine, run and seed, so a test prompt stays unseen."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from mechscope.errors import TaskError

SPLITS = ("train", "test")
T = TypeVar("T")


def held_out(key: str, fraction: float) -> bool:
    """Whether `key` falls in the test split: a stable hash, the same on every machine, run and seed."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def checked_split(split: str) -> str:
    if split not in SPLITS:
        raise TaskError(f"split must be 'train' or 'test', got {split!r}")
    return split


def in_split(key: str, split: str, fraction: float) -> bool:
    """Whether `key` lies in `split` when `fraction` of all keys are held out for "test"."""
    return held_out(key, fraction) == (checked_split(split) == "test")


def split_items(items: Iterable[T], key: Callable[[T], str], fraction: float) -> dict[str, list[T]]:
    """`items` grouped into "train" and "test" by the stable hash of `key(item)`."""
    groups: dict[str, list[T]] = {split: [] for split in SPLITS}
    for item in items:
        groups["test" if held_out(key(item), fraction) else "train"].append(item)
    return groups
