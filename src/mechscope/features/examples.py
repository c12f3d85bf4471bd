"""Example contexts in Parquet (`examples.parquet`): written once after mining, read back by latent and split.

One row per example, sorted by latent, kind (top, quantile, random_negative), split and rank:
latent, kind, split ("train" | "test": the window's split), rank (0 = highest activation within its
latent, kind and split; top-k is ranked across both splits), quantile_bin (-1 unless kind == "quantile"),
window, position (the example's token in the window), start (window position of tokens[0]), tokens,
token_ids, activations (the latent's activation at every token), activation (at `position`),
max_activation (over the context).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mechscope.data.atomic import atomic_file
from mechscope.errors import MechscopeError
from mechscope.features.batches import WindowStore
from mechscope.features.miner import SPLITS, ExampleSet

FILE = "examples.parquet"
KINDS = ("top", "quantile", "random_negative")
ROW_GROUP = 8192


@dataclass(frozen=True)
class ContextExample:
    """One stored example context of one latent."""

    latent: int
    kind: str
    split: str
    rank: int
    quantile_bin: int
    window: int
    position: int
    start: int
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    activations: tuple[float, ...]
    activation: float
    max_activation: float

    @property
    def token_index(self) -> int:
        """Index in `tokens` of the example's own token."""
        return self.position - self.start


def vocabulary(tokenizer, size: int) -> list[str]:
    """Display string of every token id below `size` (ids the tokenizer does not know show as <id>)."""
    known = len(tokenizer)
    return [tokenizer.decode([i]) if i < known else f"<{i}>" for i in range(size)]


def write_examples(path: Path, sets: list[ExampleSet], store: WindowStore, strings: list[str]) -> int:
    """Write every example set to `path`; returns the number of rows."""
    columns = {name: np.concatenate([getattr(s, name) for s in sets]) for name in
               ("latent", "activation", "window", "position", "start", "test", "quantile_bin")}
    context = np.concatenate([s.context for s in sets]).astype(np.float32)
    kind = np.concatenate([np.full(len(s.latent), KINDS.index(s.kind), np.int8) for s in sets])
    split_key = np.where(kind == KINDS.index("top"), 0, columns["test"])  # top-k is ranked across both splits
    order = np.lexsort((-columns["activation"], split_key, kind, columns["latent"]))
    columns = {k: v[order] for k, v in columns.items()}
    kind, context = kind[order], context[order]
    group = np.stack([columns["latent"], kind, split_key[order]], 1)
    new_group = np.r_[True, (group[1:] != group[:-1]).any(1)]
    starts = np.flatnonzero(new_group)
    rank = np.arange(len(kind)) - np.repeat(starts, np.diff(np.r_[starts, len(kind)]))
    span = context.shape[1]
    ids = store.read(columns["window"], columns["start"], span) if len(kind) else np.zeros((0, span), np.int32)
    offsets = pa.array(np.arange(0, len(kind) * span + 1, span, dtype=np.int32))
    table = pa.table({
        "latent": pa.array(columns["latent"].astype(np.int32)),
        "kind": pa.DictionaryArray.from_arrays(pa.array(kind), pa.array(KINDS)),
        "split": pa.DictionaryArray.from_arrays(pa.array(columns["test"].astype(np.int8)), pa.array(SPLITS)),
        "rank": pa.array(rank.astype(np.int32)),
        "quantile_bin": pa.array(columns["quantile_bin"].astype(np.int16)),
        "window": pa.array(columns["window"].astype(np.int64)),
        "position": pa.array(columns["position"].astype(np.int32)),
        "start": pa.array(columns["start"].astype(np.int32)),
        "tokens": pa.ListArray.from_arrays(offsets, pa.array(strings, pa.string()).take(pa.array(ids.reshape(-1)))),
        "token_ids": pa.ListArray.from_arrays(offsets, pa.array(ids.reshape(-1).astype(np.int32))),
        "activations": pa.ListArray.from_arrays(offsets, pa.array(context.reshape(-1))),
        "activation": pa.array(columns["activation"].astype(np.float32)),
        "max_activation": pa.array(context.max(1, initial=0.0)),
    })
    with atomic_file(path) as handle:
        pq.write_table(table, handle, row_group_size=ROW_GROUP)
    return len(kind)


def read_examples(path: Path, latents: list[int] | None = None, split: str | None = None,
                  kind: str | None = None) -> pa.Table:
    """The stored examples of `latents` (all when None), optionally of one split and kind, in stored order."""
    if split not in (None, *SPLITS):
        raise MechscopeError(f"split must be one of {SPLITS} or None, got {split!r}")
    if kind not in (None, *KINDS):
        raise MechscopeError(f"kind must be one of {KINDS} or None, got {kind!r}")
    filters = []
    if latents is not None:
        filters.append(("latent", "in", [int(i) for i in latents]))
    table = pq.read_table(path, filters=filters or None)
    for column, value in (("split", split), ("kind", kind)):
        if value is not None:
            table = table.filter(pc.equal(table[column].cast(pa.string()), value))
    return table


def to_examples(table: pa.Table) -> list[ContextExample]:
    """Rows as ContextExample objects."""
    columns = []
    for f in fields(ContextExample):
        values = table[f.name].to_pylist()
        columns.append([tuple(v) for v in values] if f.name in ("tokens", "token_ids", "activations") else values)
    return [ContextExample(*row) for row in zip(*columns)]


def grouped(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(latent, its rows) for a table sorted by latent."""
    latent = table["latent"].to_numpy()
    for a, b in runs(latent):
        yield int(latent[a]), table.slice(a, b - a)


def runs(keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of equal consecutive values of `keys`."""
    if len(keys) == 0:
        return
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    yield from zip(bounds[:-1].tolist(), bounds[1:].tolist())
