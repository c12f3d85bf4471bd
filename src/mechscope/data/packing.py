"""Tokenise documents and pack them into fixed-length context windows, streaming and seeded."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from mechscope.errors import DataError


@dataclass(frozen=True)
class WindowLayout:
    """Special tokens around each window's body, as the tokenizer itself adds them."""

    prefix: tuple[int, ...]  # e.g. (BOS,) for Llama, (CLS,) for BERT, () for GPT-2
    suffix: tuple[int, ...]  # e.g. (SEP,) for BERT
    separator: tuple[int, ...]  # between documents inside a window (EOS or SEP), may be empty

    @classmethod
    def of(cls, tokenizer, prepend_bos: bool | None = None, separate: bool = True) -> "WindowLayout":
        probe = tokenizer("mechscope", add_special_tokens=False)["input_ids"]
        full = tokenizer("mechscope", add_special_tokens=True)["input_ids"]
        start = next(i for i in range(len(full)) if full[i:i + len(probe)] == probe)
        prefix, suffix = tuple(full[:start]), tuple(full[start + len(probe):])
        if prepend_bos is True and not prefix and tokenizer.bos_token_id is not None:
            prefix = (tokenizer.bos_token_id,)
        elif prepend_bos is False:
            prefix = ()
        sep_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        return cls(prefix, suffix, (sep_id,) if separate and sep_id is not None else ())

    def body(self, context: int) -> int:
        size = context - len(self.prefix) - len(self.suffix)
        if size < 1:
            raise DataError(f"context {context} leaves no room for text after special tokens {self}")
        return size


def shuffled(documents: Iterable[str], buffer: int, seed: int) -> Iterator[str]:
    """Documents through a seeded shuffle buffer (buffer <= 1 keeps the order)."""
    if buffer <= 1:
        yield from documents
        return
    rng = random.Random(seed)
    pool: list[str] = []
    for doc in documents:
        pool.append(doc)
        if len(pool) >= buffer:
            i = rng.randrange(len(pool))
            pool[i], pool[-1] = pool[-1], pool[i]
            yield pool.pop()
    rng.shuffle(pool)
    yield from pool


def pack(tokenizer, documents: Iterable[str], context: int, layout: WindowLayout | None = None,
         shuffle_buffer: int = 1024, seed: int = 0, tokenize_batch: int = 256) -> Iterator[torch.Tensor]:
    """Windows of exactly `context` token ids (int64), each framed by the layout's special tokens."""
    layout = layout or WindowLayout.of(tokenizer)
    body = layout.body(context)
    stream: list[int] = []
    batch: list[str] = []
    produced = False

    def flush(texts: list[str]) -> Iterator[torch.Tensor]:
        nonlocal stream, produced
        for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
            stream.extend(ids)
            stream.extend(layout.separator)
        start = 0
        while len(stream) - start >= body:
            produced = True
            yield torch.tensor(layout.prefix + tuple(stream[start:start + body]) + layout.suffix)
            start += body
        stream = stream[start:]

    for doc in shuffled(documents, shuffle_buffer, seed):
        batch.append(doc)
        if len(batch) == tokenize_batch:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)
    if not produced:
        raise DataError(f"the source holds fewer than {body} tokens: not one window of context {context}")
