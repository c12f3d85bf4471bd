"""Packing documents into windows: exact lengths, special-token layout, order and determinism."""

from __future__ import annotations

import pytest
import torch

from mechscope.data.packing import WindowLayout, pack
from mechscope.errors import DataError
from tests.conftest import word_tokenizer

WORDS = "the cat sat on a mat and dog ran far away".split()


def test_bert_windows_are_framed_by_cls_and_sep(minilm):
    docs = ["the quick brown fox jumps over the lazy dog " * 5] * 4
    rows = list(pack(minilm.tokenizer, docs, context=16, shuffle_buffer=1))
    assert rows and all(r.shape == (16,) for r in rows)
    cls, sep = minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id
    assert all(r[0] == cls and r[-1] == sep for r in rows)


def test_windows_concatenate_back_to_the_token_stream_with_separators():
    tok = word_tokenizer(WORDS)
    docs = [" ".join(WORDS[i:i + 5]) for i in range(6)]
    layout = WindowLayout.of(tok, prepend_bos=True)
    assert layout.prefix == (tok.bos_token_id,) and layout.separator == (tok.eos_token_id,)
    rows = list(pack(tok, docs, context=6, layout=layout, shuffle_buffer=1))
    body = torch.cat([r[1:] for r in rows]).tolist()
    stream = [t for d in docs for t in tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    assert body == stream[: len(body)] and len(stream) - len(body) < 5


def test_seeded_shuffle_is_deterministic_and_seed_dependent():
    tok = word_tokenizer(WORDS)
    docs = [f"{w} {v}" for w in WORDS for v in WORDS]
    a = torch.stack(list(pack(tok, docs, context=8, shuffle_buffer=16, seed=1)))
    b = torch.stack(list(pack(tok, docs, context=8, shuffle_buffer=16, seed=1)))
    c = torch.stack(list(pack(tok, docs, context=8, shuffle_buffer=16, seed=2)))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_too_little_text_is_an_error():
    with pytest.raises(DataError, match="fewer than"):
        list(pack(word_tokenizer(WORDS), ["the cat"], context=64))
