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
    """Global batches by step. `resumable` sources give batch s the same contents on every run.

    A paired source (d_out set: a transcoder's input and target hooks) yields (x [b, d_in], y [b, d_out]).
    """

    d_in: int
    name: str
    make: Callable[[int, int], Iterator[Tensor]]  # (batch_size, start step) -> batches
    resumable: bool = True
    hook_name: str = ""
    model_name: str = ""
    provenance: dict | None = None
    d_out: int | None = None
    hook_name_out: str = ""

    @property
    def paired(self) -> bool:
        return self.d_out is not None

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        expected = [(batch_size, self.d_in)] + ([(batch_size, self.d_out)] if self.paired else [])
        for step, batch in enumerate(self.make(batch_size, start), start):
            shapes = [tuple(t.shape) for t in (batch if isinstance(batch, tuple) else (batch,))]
            if shapes != expected:
                raise DataError(f"batch {step} from {self.name} has shapes {shapes}; expected {expected}")
            yield batch

    def sample(self, n: int, batch_size: int) -> Tensor | tuple[Tensor, Tensor]:
        """The first n rows of the stream (what initialisation statistics are computed from)."""
        chunks = [b if self.paired else (b,) for b in islice(self.batches(batch_size, 0), -(-n // batch_size))]
        rows = tuple(torch.cat(part)[:n].float() for part in zip(*chunks))
        return rows if self.paired else rows[0]


def as_batch_source(source, hook: str | None = None, seed: int = 0, hook_out: str | None = None) -> BatchSource:
    """Accept an ActivationCache (or its directory), a SyntheticFeatures, a BatchSource or an iterator (of
    tensors, or of (x, y) pairs for a transcoder). With `hook_out`, a cache gives (hook, hook_out) pairs,
    aligned token for token."""
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
        hooks = [hook] if hook_out is None else [hook, hook_out]

        def make(b: int, s: int) -> Iterator:
            for batch in cache.batches(b, hooks, seed=seed, start=s, epochs=None, dtype=torch.float32):
                yield batch if hook_out is None else (batch[hook], batch[hook_out])
        return BatchSource(cache.d(hook), f"cache:{cache.directories[0]}:{'->'.join(hooks)}", make,
                           hook_name=hook, model_name=cache.manifest["model"]["name"],
                           provenance={"cache": [str(d) for d in cache.directories], "tokens": len(cache),
                                       "model": cache.manifest["model"], "corpus": cache.manifest["corpus"]},
                           d_out=None if hook_out is None else cache.d(hook_out), hook_name_out=hook_out or "")
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
            yield from rebatch(chain([first], iterator), b)
        if isinstance(first, tuple):
            return BatchSource(first[0].shape[-1], "stream", make, resumable=False, d_out=first[1].shape[-1])
        return BatchSource(first.shape[-1], "stream", make, resumable=False)
    raise DataError(f"cannot train from {type(source).__name__}: expected an ActivationCache, a cache directory, "
                    "SyntheticFeatures or an iterator of [batch, d_in] tensors")


def rebatch(chunks: Iterator, size: int) -> Iterator:
    """Regroup a stream of [n, d] tensors (or of aligned tuples of them) into [size, d] batches."""
    pending, held = [], 0
    for chunk in chunks:
        parts = chunk if isinstance(chunk, tuple) else (chunk,)
        pending.append(parts)
        held += parts[0].shape[0]
        while held >= size:
            blocks = [torch.cat(part) for part in zip(*pending)]
            yield tuple(b[:size] for b in blocks) if isinstance(chunk, tuple) else blocks[0][:size]
            pending, held = [tuple(b[size:] for b in blocks)], held - size
