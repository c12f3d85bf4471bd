"""Crosscoders seen with their source axis: per-source weights and norms, and the batches they train on.

A crosscoder is a Dictionary over n concatenated sources (variants "crosscoder" and "crosscoder-l1"); here
its tensors are viewed as W_enc [n, d_in, d_sae], W_dec [d_sae, n, d_in], b_dec [n, d_in], and its
training batches are built from a paired harvest (one hook, two models) or one cache of several hooks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mechscope.dictionaries.batches import BatchSource
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.errors import DataError, MechscopeError


def n_sources(d: Dictionary) -> int:
    if d.cfg.n_sources < 2:
        raise MechscopeError(f"expected a crosscoder (n_sources >= 2), got a {d.cfg.architecture} dictionary "
                             f"with n_sources={d.cfg.n_sources}")
    return d.cfg.n_sources


def source_decoder(d: Dictionary) -> Tensor:
    """W_dec viewed as [d_sae, n_sources, d_source]."""
    return d.W_dec.reshape(d.d_sae, n_sources(d), -1)


def source_encoder(d: Dictionary) -> Tensor:
    """W_enc viewed as [n_sources, d_source, d_sae]."""
    return d.W_enc.reshape(n_sources(d), -1, d.d_sae)


def source_decoder_norms(d: Dictionary) -> Tensor:
    """[d_sae, n_sources] norm of each latent's decoder vector in each source."""
    return source_decoder(d).detach().norm(dim=-1)


def encode_sources(d: Dictionary, x: Tensor) -> Tensor:
    """Codes [..., d_sae] of activations x [..., n_sources, d_source]."""
    return d.encode(x.flatten(-2))


def decode_sources(d: Dictionary, codes: Tensor) -> Tensor:
    """Reconstruction [..., n_sources, d_source] from codes."""
    return d.decode(codes).unflatten(-1, (n_sources(d), -1))


def crosscoder_source(source, hooks: list[str] | None = None, seed: int = 0) -> BatchSource:
    """Training batches [batch, n * d] for a crosscoder: a paired harvest (its one hook, or `hooks[0]`, of
    both models) or an ActivationCache and the several `hooks` of one model (an acausal cross-layer crosscoder)."""
    from mechscope.data import ActivationCache
    from mechscope.data.paired import PairedActivations, is_pair

    if isinstance(source, (str, Path)) and is_pair(source):
        source = PairedActivations(source)
    if isinstance(source, PairedActivations):
        pair = source
        hook = _one_hook(pair.hooks, hooks)
        models = {"a": pair.a.manifest["model"], "b": pair.b.manifest["model"]}
        return BatchSource(2 * pair.a.d(hook), f"pair:{pair.path}:{hook}",
                           lambda b, s: pair.batches(b, hook, seed=seed, start=s, epochs=None, dtype=torch.float32),
                           hook_name=hook, model_name=" vs ".join(pair.models),
                           provenance={"cache": [str(pair.path / "a"), str(pair.path / "b")], "tokens": len(pair),
                                       "model": models["a"], "models": models, "sources": list(pair.models),
                                       "corpus": pair.a.manifest["corpus"]})
    cache = source if isinstance(source, ActivationCache) else ActivationCache(source)
    hooks = list(hooks or cache.hooks)
    if len(hooks) < 2:
        raise DataError(f"a cross-layer crosscoder reads several hooks of one cache; got {hooks} (this cache holds "
                        f"{cache.hooks}); for two models give a paired harvest directory")
    widths = {cache.d(h) for h in hooks}
    if len(widths) != 1:
        raise DataError(f"crosscoder sources must share one width; hooks {hooks} have widths "
                        f"{[cache.d(h) for h in hooks]}")

    def make(batch_size: int, start: int):
        for batch in cache.batches(batch_size, hooks, seed=seed, start=start, epochs=None, dtype=torch.float32):
            yield torch.cat([batch[h] for h in hooks], dim=1)

    return BatchSource(len(hooks) * widths.pop(), f"cache:{cache.directories[0]}:{','.join(hooks)}", make,
                       hook_name=",".join(hooks), model_name=cache.manifest["model"]["name"],
                       provenance={"cache": [str(p) for p in cache.directories], "tokens": len(cache),
                                   "model": cache.manifest["model"], "sources": hooks,
                                   "corpus": cache.manifest["corpus"]})


def _one_hook(available: list[str], hooks: list[str] | None) -> str:
    if hooks:
        if len(hooks) != 1 or hooks[0] not in available:
            raise DataError(f"a paired harvest gives one hook of two models; choose one of {available}, got {hooks}")
        return hooks[0]
    if len(available) != 1:
        raise DataError(f"the paired harvest holds hooks {available}; name the one to train on")
    return available[0]
