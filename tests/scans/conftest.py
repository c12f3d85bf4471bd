"""A tiny GPT-2 with a planted concept: the embeddings of four weapon words carry a large component along one
direction, a ReLU dictionary has a latent reading that direction, and a mined catalogue labels it."""

from __future__ import annotations

import json
import random

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.formats import save_dictionary
from mechscope.features import Catalog, mine
from tests.conftest import tiny_hf, word_tokenizer

CONCEPT = ["gun", "bomb", "rifle", "grenade"]
NEUTRAL = ["cup", "book", "lamp", "chair"]
FILLER = "the man woman took a to his her house car and went home saw old new red big small near".split()
HOOK = "blocks.1.hook_resid_post"
PLANTED, UNRELATED = 3, 5  # the latent reading the concept direction; a latent labelled with something else


def sentences(words: list[str], n: int, seed: int) -> list[str]:
    """`n` filler sentences of 5-8 words, each with one of `words` at a random place."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = rng.choices(FILLER, k=rng.randint(4, 7))
        body.insert(rng.randint(0, len(body)), rng.choice(words))
        out.append(" ".join(body))
    return out


def family_toml(families: dict[str, dict]) -> str:
    """A concept-family file (JSON string lists are TOML arrays)."""
    return "".join(f"[families.{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
                   for name, table in families.items())


@pytest.fixture(scope="session")
def planted_lm():
    lm = mechscope.load_model(tiny_hf("gpt2"), tokenizer=word_tokenizer(CONCEPT + NEUTRAL + FILLER), device="cpu")
    direction = torch.nn.functional.normalize(torch.randn(32, generator=torch.Generator().manual_seed(3)), dim=0)
    ids = lm.tokenizer.convert_tokens_to_ids(CONCEPT)
    with torch.no_grad():
        lm.hf.transformer.wte.weight[ids] += 3 * direction
    return lm, direction


@pytest.fixture(scope="session")
def planted_catalog(planted_lm, tmp_path_factory):
    """Catalogue directory (with the dictionary it was mined from) labelled by hand."""
    lm, direction = planted_lm
    sae = Dictionary(DictionaryConfig(32, 8, "relu", relu_form="classic", hook_name=HOOK))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(0.1 * torch.randn(32, 8, generator=g))
        sae.W_enc[:, PLANTED] = direction
        sae.b_enc.fill_(0.0)
        sae.b_enc[PLANTED] = -1.5
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.randn(8, 32, generator=g))
    root = tmp_path_factory.mktemp("scans")
    save_dictionary(sae, root / "sae")
    text = sentences(CONCEPT, 40, 1) + sentences(NEUTRAL, 40, 2)
    mine(lm, root / "sae", text, root / "features", tokens=400, context=12, batch_size=8, top_k=4, samples=4,
         negatives=2, negative_pool=8, min_activations=2, cooccurrence_hashes=32, neighbours=2, logit_tokens=3)
    with Catalog(root / "features") as catalog:
        catalog.add_score(catalog.add_label(PLANTED, "mentions of firearms and explosives", "test"), "embedding", 0.9)
        catalog.add_label(UNRELATED, "Python function definitions", "test")
    return root
