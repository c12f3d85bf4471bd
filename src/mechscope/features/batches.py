"""Dictionary codes of whole context windows, from a model over text or from an activation cache.

Windows are numbered in the order they arrive; their token ids spill to a file on disk (4 bytes a
token) so that example contexts can be read back after the pass without holding the corpus in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mechscope.data.harvester import HarvestConfig, activation_batches, prefetched, windows
from mechscope.data.sources import TextSource


@dataclass
class CodeBatch:
    """Codes of the kept positions of consecutive windows `first_window .. first_window + len(windows) - 1`."""

    codes: Tensor  # [n, d_sae]
    window: Tensor  # [n] window number of each row
    position: Tensor  # [n] position in that window
    windows: Tensor  # [rows, context] token ids
    first_window: int
    _lookup: Tensor | None = field(default=None, repr=False)

    def contexts(self, rows: Tensor, latents: Tensor, before: int, span: int) -> tuple[Tensor, Tensor]:
        """(start position [m], activation of latents[i] at each of `span` tokens from it [m, span]) around rows."""
        if self._lookup is None:  # row of `codes` at each (window, position); -1 where nothing was mined
            self._lookup = torch.full(self.windows.shape, -1, dtype=torch.int64, device=self.codes.device)
            self._lookup[self.window - self.first_window, self.position] = torch.arange(
                self.codes.shape[0], device=self.codes.device)
        context = self.windows.shape[1]
        start = (self.position[rows] - before).clamp(0, context - span)
        first = (self.window[rows] - self.first_window) * context + start
        index = self._lookup.view(-1)[first[:, None] + torch.arange(span, device=self.codes.device)]
        acts = self.codes.reshape(-1)[index.clamp_min(0) * self.codes.shape[1] + latents[:, None]]
        return start, acts.masked_fill_(index < 0, 0)


def text_batches(model, encode, hook: str, source: TextSource, tokens: int, context: int, batch_size: int,
                 seed: int, exclude_special: bool) -> Iterator[CodeBatch]:
    """Run the model (stopping after `hook`) over packed windows of `source` and encode up to `tokens` positions."""
    cfg = HarvestConfig(hooks=[hook], tokens=tokens, context=context, batch_size=batch_size, seed=seed,
                        exclude_special=exclude_special)
    first, mined = 0, 0
    for batch in activation_batches(model, prefetched(windows(model, source, cfg)), cfg):
        n = min(batch.tokens.numel(), tokens - mined)
        index = batch.index[:n].long()
        yield _code_batch(encode, batch.acts[hook][:n], index + torch.tensor([first, 0]), batch.windows, first)
        first += batch.windows.shape[0]
        mined += n
        if mined >= tokens:
            return


def cache_batches(cache, encode, hook: str, tokens: int, batch_size: int) -> Iterator[CodeBatch]:
    """Encode the cached activations at `hook` in stored order (`tokens` = 0: all of them)."""
    mined = 0
    for acts, index, table, first in cache.in_order(hook, batch_size):
        n = acts.shape[0] if tokens == 0 else min(acts.shape[0], tokens - mined)
        if n > 0:
            yield _code_batch(encode, acts[:n], index[:n], table, first)
        mined += n
        if tokens and mined >= tokens:
            return


def _code_batch(encode, acts: Tensor, index: Tensor, table: Tensor, first: int) -> CodeBatch:
    codes = encode(acts)
    return CodeBatch(codes, index[:, 0].to(codes.device), index[:, 1].to(codes.device), table, first)


class WindowStore:
    """Token ids of every window seen, appended to a file on disk and read back by window number."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self.context: int | None = None
        self._handle = open(path, "wb")

    def add(self, batch: CodeBatch) -> None:
        """Append the batch's windows that are not stored yet (consecutive batches may share a window)."""
        self.context = batch.windows.shape[1]
        new = batch.windows[self.count - batch.first_window:]
        self._handle.write(new.to(torch.int32).numpy().tobytes())
        self.count += new.shape[0]

    def read(self, window: np.ndarray, start: np.ndarray, span: int) -> np.ndarray:
        """Token ids [m, span] starting at position start[i] of window[i]."""
        self._handle.flush()
        table = np.memmap(self.path, dtype=np.int32, mode="r", shape=(self.count, self.context))
        return table[window[:, None], start[:, None] + np.arange(span)]

    def close(self) -> None:
        """Close and delete the file."""
        self._handle.close()
        self.path.unlink(missing_ok=True)
