"""Where training batches come from: an ActivationCache, a synthetic generator or a live stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice

import torch
from torch import Tensor

from mechscope.errors import DataError
from mechscope.synthetic.features import SyntheticFeatures


@dataclass
class BatchSource:
    """Global batches by step. `resumable` sources give batch s the same contents on every run."""

    d_in: int
    name: str
    make: Callable[[int, int], Iterator[Tensor]]  # (batch_size, start step) -> batches
    resumable: bool = True
    hook_name: str = ""
    model_name: str = ""
    provenance: dict | None = None

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Tensor]:
        for step, batch in enumerate(self.make(batch_size, start), start):
            if batch.shape != (batch_size, self.d_in):
                raise DataError(f"batch {step} from {self.name} has shape {tuple(batch.shape)}; expected "
                                f"({batch_size}, {self.d_in})")
            yield batch

    def sample(self, n: int, batch_size: int) -> Tensor:
        """The first n rows of the stream (what initialisation statistics are computed from)."""
        rows = torch.cat(list(islice(self.batches(batch_size, 0), -(-n // batch_size))))
        return rows[:n].float()


def as_batch_source(source, hook: str | None = None, seed: int = 0) -> BatchSource:
    """Accept an ActivationCache (or its directory), a SyntheticFeatures, a BatchSource or an iterator."""
    from mechscope.data import ActivationCache

    if isinstance(source, BatchSource):
        return source
    if isinstance(source, (str,)) or hasattr(source, "__fspath__"):
        source = ActivationCache(source)
    if isinstance(source, ActivationCache):
        if hook is None:
            if len(source.hooks) != 1:
                raise DataError(f"the cache holds several hooks {source.hooks}; name the one to train on")
            hook = source.hooks[0]
        cache = source
        return BatchSource(cache.d(hook), f"cache:{cache.directories[0]}:{hook}",
                           lambda b, s: cache.batches(b, hook, seed=seed, start=s, epochs=None, dtype=torch.float32),
                           hook_name=hook, model_name=cache.manifest["model"]["name"],
                           provenance={"cache": [str(d) for d in cache.directories], "tokens": len(cache),
                                       "model": cache.manifest["model"], "corpus": cache.manifest["corpus"]})
    if isinstance(source, SyntheticFeatures):
        synthetic = source
        return BatchSource(synthetic.d, f"synthetic(n={synthetic.n_features}, d={synthetic.d})",
                           lambda b, s: synthetic.batches(b, s), provenance={"synthetic": repr(synthetic)})
    if hasattr(source, "__iter__"):
        iterator = iter(source)
        first = next(iterator)

        def make(b: int, s: int) -> Iterator[Tensor]:
            if s:
                raise DataError("a live stream cannot resume from a checkpoint; train from an ActivationCache")
            yield from _rebatch(chain([first], iterator), b)
        return BatchSource(first.shape[-1], "stream", make, resumable=False)
    raise DataError(f"cannot train from {type(source).__name__}: expected an ActivationCache, a cache directory, "
                    "SyntheticFeatures or an iterator of [batch, d_in] tensors")


def _rebatch(chunks: Iterator[Tensor], size: int) -> Iterator[Tensor]:
    """Regroup a stream of [n, d] tensors into [size, d] batches."""
    pending, held = [], 0
    for chunk in chunks:
        pending.append(chunk)
        held += chunk.shape[0]
        while held >= size:
            block = torch.cat(pending)
            yield block[:size]
            pending, held = [block[size:]], held - size
