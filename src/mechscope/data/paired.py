"""Paired harvest: the same token windows through two models, two caches aligned token for token.

`harvest_pair` runs the ordinary harvest twice with one config, so both caches hold the same windows and
positions; `PairedActivations` opens the pair, checks the alignment and yields batches whose rows are the
two models' activations at the same token (what a model-diffing crosscoder trains on).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mechscope.data.cache import ActivationCache
from mechscope.data.harvester import harvest
from mechscope.data.sources import text_source
from mechscope.errors import CacheMismatchError, DataError
from mechscope.manifest import MANIFEST_FILE, build_manifest, input_record, write_manifest

PAIR_FORMAT = "mechscope.activation_pair"
SIDES = ("a", "b")


class TokenizerMismatchError(DataError):
    """Two models whose activations should be paired token for token tokenize text differently."""


def check_same_tokenizer(tokenizer_a, tokenizer_b, names: tuple[str, str] = ("A", "B")) -> None:
    """Raise TokenizerMismatchError naming the first difference in vocabulary or special tokens."""
    vocab_a, vocab_b = tokenizer_a.get_vocab(), tokenizer_b.get_vocab()
    if vocab_a != vocab_b:
        only_a = sorted(set(vocab_a) - set(vocab_b))[:5]
        only_b = sorted(set(vocab_b) - set(vocab_a))[:5]
        moved = sorted(t for t in set(vocab_a) & set(vocab_b) if vocab_a[t] != vocab_b[t])[:5]
        raise TokenizerMismatchError(
            f"models {names[0]} and {names[1]} have different vocabularies ({len(vocab_a)} vs {len(vocab_b)} "
            f"tokens; only in {names[0]}: {only_a}, only in {names[1]}: {only_b}, different ids: {moved}); "
            "paired activations need one tokenizer")
    specials_a, specials_b = sorted(tokenizer_a.all_special_ids), sorted(tokenizer_b.all_special_ids)
    if specials_a != specials_b or tokenizer_a.bos_token_id != tokenizer_b.bos_token_id:
        raise TokenizerMismatchError(f"models {names[0]} and {names[1]} share a vocabulary but not special tokens "
                                     f"({specials_a} vs {specials_b}); paired activations need one tokenizer")


def harvest_pair(model_a, model_b, source, hooks: list[str] | str, tokens: int = 1_000_000,
                 out: str | Path = "activation-pair", **options) -> Path:
    """Harvest `hooks` of both models on the same windows into out/a and out/b; resumes like `harvest`."""
    check_same_tokenizer(model_a.tokenizer, model_b.tokenizer, (model_a.info.name, model_b.info.name))
    source = text_source(source)
    out = Path(out)
    for side, model in zip(SIDES, (model_a, model_b)):
        harvest(model, source, hooks, tokens, out / side, **options)
    write_manifest(out, build_manifest(
        PAIR_FORMAT, model={"a": model_a.describe(), "b": model_b.describe()},
        inputs={side: input_record(out / side) for side in SIDES}, hooks=[hooks] if isinstance(hooks, str) else
        list(hooks), tokens=tokens, corpus=source.name))
    PairedActivations(out)  # checks the alignment before anyone trains on it
    return out


def is_pair(path: str | Path) -> bool:
    manifest = Path(path) / MANIFEST_FILE
    return manifest.is_file() and json.loads(manifest.read_text()).get("format") == PAIR_FORMAT


class PairedActivations:
    """Two caches of the same tokens (model A, model B), opened together and checked to be aligned."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not is_pair(self.path):
            raise DataError(f"{self.path} is not a paired harvest (expected {MANIFEST_FILE} of format {PAIR_FORMAT})")
        self.manifest = json.loads((self.path / MANIFEST_FILE).read_text())
        self.a, self.b = (ActivationCache(self.path / side) for side in SIDES)
        if len(self.a) != len(self.b):
            raise CacheMismatchError(f"{self.path}: model A's cache holds {len(self.a)} tokens, B's {len(self.b)}")
        for start in range(0, len(self.a), 1 << 16):
            span = slice(start, min(start + (1 << 16), len(self.a)))
            if not torch.equal(self.a.token_ids(span), self.b.token_ids(span)):
                first = start + int(np.argmax((self.a.token_ids(span) != self.b.token_ids(span)).numpy()))
                raise CacheMismatchError(f"{self.path}: the two caches differ at token {first}; they were not "
                                         "harvested from the same windows")

    @property
    def hooks(self) -> list[str]:
        return self.a.hooks

    @property
    def models(self) -> tuple[str, str]:
        return self.a.manifest["model"]["name"], self.b.manifest["model"]["name"]

    def __len__(self) -> int:
        return len(self.a)

    def get(self, hook: str, index) -> torch.Tensor:
        """Activations [len(index), 2, d] of both models at global token indices."""
        return torch.stack([self.a.get(hook, index), self.b.get(hook, index)], dim=1)

    def batches(self, batch_size: int, hook: str, seed: int = 0, start: int = 0, epochs: int | None = 1,
                dtype: torch.dtype | None = None) -> Iterator[torch.Tensor]:
        """Shuffled batches [batch, 2 * d]: A's then B's activations at the same tokens (one shared permutation)."""
        streams = [cache.batches(batch_size, hook, seed=seed, start=start, epochs=epochs, dtype=dtype)
                   for cache in (self.a, self.b)]
        for a, b in zip(*streams):
            yield torch.cat([a, b], dim=1)
