"""Train straight from the model: activations through a seeded shuffle buffer, no disk."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mechscope.data.harvester import HarvestConfig, _check_hooks, activation_batches, windows
from mechscope.data.sources import text_source
from mechscope.errors import DataError


def stream_batches(model, source, hook: str, batch_size: int = 4096, buffer_tokens: int = 2**16,
                   tokens: int | None = None, seed: int = 0, forward_batch: int = 32,
                   **options) -> Iterator[torch.Tensor]:
    """Batches [batch_size, d] of shuffled activations at `hook`, harvested on the fly.

    A buffer of `buffer_tokens` is filled, shuffled, and its first half served while the rest waits
    to be mixed with newer activations (the mixing buffer SAELens and sparsify use). `tokens` caps the
    number of activations served; None serves until the source is exhausted. `forward_batch` windows go
    through the model at a time; other options are HarvestConfig fields (context, exclude_special, ...).
    """
    if buffer_tokens < 2 * batch_size:
        raise DataError(f"buffer_tokens ({buffer_tokens}) must hold at least two batches of {batch_size}")
    cfg = HarvestConfig(hooks=[hook], seed=seed, batch_size=forward_batch, **({"tokens": tokens} if tokens else {}),
                        **options)
    _check_hooks(model, cfg.hooks)
    generator = torch.Generator().manual_seed(seed)
    buffer: list[torch.Tensor] = []
    held = served = 0
    limit = tokens if tokens is not None else float("inf")
    for batch in activation_batches(model, windows(model, text_source(source), cfg), cfg):
        buffer.append(batch.acts[hook])
        held += batch.acts[hook].shape[0]
        if held < buffer_tokens:
            continue
        pool = torch.cat(buffer)
        pool = pool[torch.randperm(pool.shape[0], generator=generator)]
        n_out = (pool.shape[0] // 2) // batch_size * batch_size
        for start in range(0, n_out, batch_size):
            if served >= limit:
                return
            yield pool[start:start + batch_size]
            served += batch_size
        buffer, held = [pool[n_out:]], pool.shape[0] - n_out
    if buffer and served < limit:
        pool = torch.cat(buffer)
        pool = pool[torch.randperm(pool.shape[0], generator=generator)]
        for start in range(0, pool.shape[0] - batch_size + 1, batch_size):
            if served >= limit:
                return
            yield pool[start:start + batch_size]
            served += batch_size
