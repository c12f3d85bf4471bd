"""Streaming from the model through a shuffle buffer: the same activations as a harvest, shuffled."""

from __future__ import annotations

import torch

from mechscope.data import ActivationCache, harvest, stream_batches


def test_stream_serves_harvested_activations_shuffled(minilm, tmp_path):
    streamed = torch.cat(list(stream_batches(minilm, "pydocs", "blocks.0.hook_resid_post", batch_size=64,
                                             buffer_tokens=512, tokens=1024, seed=0, forward_batch=8, context=32)))
    assert streamed.shape == (1024, 384)
    cache = ActivationCache(harvest(minilm, "pydocs", "blocks.0.hook_resid_post", tokens=2048, out=tmp_path,
                                    context=32, batch_size=8))
    stored = cache.get("blocks.0.hook_resid_post", slice(None))
    stored_rows = {tuple(r) for r in stored[:, :4].tolist()}
    assert all(tuple(r) in stored_rows for r in streamed[:, :4].tolist())
    assert not torch.equal(streamed[:64], stored[:64])  # not in harvest order
    again = torch.cat(list(stream_batches(minilm, "pydocs", "blocks.0.hook_resid_post", batch_size=64,
                                          buffer_tokens=512, tokens=1024, seed=0, forward_batch=8, context=32)))
    assert torch.equal(streamed, again)
