"""A tiny GPT-2 with a word tokenizer, a ReLU dictionary with designed latents, one mined catalogue, and a
brute-force reference computed window by window."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import mechscope
from mechscope.data.harvester import HarvestConfig, windows
from mechscope.data.sources import text_source
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.features import mine
from tests.conftest import tiny_hf, word_tokenizer

WORDS = "the cat sat on a mat and dog ran far away while birds sang in trees".split()
TEXT = [" ".join(WORDS[i % 11:] + WORDS[: i % 11][: i % 5]) for i in range(80)]
HOOK = "blocks.1.hook_resid_post"
MINE = dict(tokens=700, context=16, batch_size=4, top_k=6, samples=8, negatives=3, negative_pool=12, before=5,
            after=3, min_activations=10, cooccurrence_hashes=128, neighbours=5, logit_tokens=4, test_fraction=0.3)
TWIN, OPPOSITE, RARE, DEAD = 1, 2, 46, 47  # latent 1 copies latent 0, latent 2 fires where latent 0 cannot


@pytest.fixture(scope="session")
def lm():
    return mechscope.load_model(tiny_hf("gpt2"), tokenizer=word_tokenizer(WORDS), device="cpu")


@pytest.fixture(scope="session")
def sae(lm) -> Dictionary:
    """ReLU latents that each fire on about a fifth of tokens, plus a twin, an opposite, a rare and a dead one."""
    d = Dictionary(DictionaryConfig(32, 48, "relu", relu_form="classic", hook_name=HOOK))
    ids = torch.stack(list(windows(lm, text_source(TEXT), HarvestConfig(hooks=[HOOK], context=16)))[:44])
    x = lm.run_with_cache(ids, names=[HOOK])[1][HOOK].reshape(-1, 32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        d.W_enc.copy_(torch.randn(32, 48, generator=g))
        d.W_enc[:, TWIN] = d.W_enc[:, 0]
        d.W_enc[:, OPPOSITE] = -d.W_enc[:, 0]
        d.b_dec.zero_()
        pre = x @ d.W_enc
        d.b_enc.copy_(-pre.quantile(0.8, dim=0))
        d.b_enc[OPPOSITE] = d.b_enc[0]
        d.b_enc[RARE] = -pre[:, RARE].quantile(0.995)
        d.b_enc[DEAD] = -1e6
        d.W_dec.copy_(torch.randn(48, 32, generator=g))
        d.W_dec[5] = d.W_dec[4] + 0.1 * d.W_dec[5]  # a close decoder neighbour
    return d


@pytest.fixture(scope="session")
def mined(lm, sae, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    result = mine(lm, sae, TEXT, out, **MINE)
    return out, result


@dataclass
class Reference:
    codes: torch.Tensor  # [n, d_sae] for every mined token, in order
    window: torch.Tensor  # [n]
    position: torch.Tensor  # [n]
    full: dict  # window -> codes [context, d_sae] at every position (zeros where nothing was mined)


@pytest.fixture(scope="session")
def reference(lm, sae) -> Reference:
    """The same windows, one forward pass each, every code kept."""
    cfg = HarvestConfig(hooks=[HOOK], context=MINE["context"], tokens=MINE["tokens"])
    special = torch.tensor(sorted(set(lm.tokenizer.all_special_ids)))
    codes, window, position, full = [], [], [], {}
    kept = 0
    for w, ids in enumerate(windows(lm, text_source(TEXT), cfg)):
        x = lm.run_with_cache(ids[None], names=[HOOK])[1][HOOK][0]
        keep = ~torch.isin(ids, special)
        c = sae.encode(x).detach()
        pos = keep.nonzero().squeeze(1)[: MINE["tokens"] - kept]  # the last window may be cut short
        full[w] = torch.zeros_like(c).index_copy(0, pos, c[pos])
        codes.append(c[pos])
        window.append(torch.full_like(pos, w))
        position.append(pos)
        kept += len(pos)
        if kept >= MINE["tokens"]:
            break
    return Reference(torch.cat(codes), torch.cat(window), torch.cat(position), full)
