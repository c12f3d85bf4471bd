"""The real pair, SmolLM2-135M-Instruct against refusal-smollm2 (slow: two 135M models on CPU).

The two share a tokenizer, so they pair token for token; safety tuning changes next-token predictions on
harmful requests far more than on harmless ones; a crosscoder of the pair reconstructs both models and finds
mostly shared latents (figures of a longer run: benchmarks/model_diff_smollm2.py).
"""

from __future__ import annotations

import json

import pytest
import torch

from mechscope import load_dictionary, load_model, load_organism
from mechscope.data import harvest_pair
from mechscope.dictionaries import DictionaryConfig, TrainConfig, crosscoder_source, train
from mechscope.diffing import activation_difference, classify_latents, token_kl
from mechscope.models.chat import chat_text
from mechscope.tasks.safety_requests import SafetyRequests

pytestmark = pytest.mark.slow
HOOK = "blocks.15.hook_resid_post"


@pytest.fixture(scope="module")
def pair():
    return load_model("smollm2", device="cpu"), load_organism("refusal-smollm2", device="cpu").model


def test_safety_tuning_moves_the_first_reply_token_of_harmful_requests_most(pair):
    base, tuned = pair
    requests = SafetyRequests()
    chats = {harmful: [chat_text(base, t) for t in requests.instructions(harmful)] for harmful in (True, False)}
    kl = {harmful: token_kl(base, tuned, texts, context=128) for harmful, texts in chats.items()}
    first_reply = {harmful: torch.stack([row[-1] for row in result.kl]).mean() for harmful, result in kl.items()}
    assert first_reply[True] > 2 * first_reply[False]
    assert tuned.to_str_tokens(torch.stack([row[-1] for row in kl[True].top_b])).count("I") > len(chats[True]) / 2
    assert float(activation_difference(base, base, chats[False][:4], HOOK).abs().max()) == 0.0


def test_a_crosscoder_of_the_pair_reconstructs_both_models(pair, tmp_path):
    base, tuned = pair
    requests = SafetyRequests()
    texts = [chat_text(base, t) for harmful in (True, False) for t in requests.instructions(harmful, "train")]
    pair_dir = harvest_pair(base, tuned, texts, HOOK, tokens=6000, out=tmp_path / "pair", context=64, batch_size=16,
                            prepend_bos=True)
    (path,) = train(crosscoder_source(pair_dir), DictionaryConfig(2 * 576, 512, "crosscoder", k=16), tmp_path / "cc",
                    TrainConfig(tokens=150 * 512, batch_size=512, device="cpu", log_every=10))
    final = json.loads((path / "training_log.jsonl").read_text().splitlines()[-1])
    assert final["fvu"] < 0.5 and final["dead_fraction"] < 0.5
    classes = classify_latents(load_dictionary(path))
    assert classes.counts()["shared"] > classes.counts()["a_only"] + classes.counts()["b_only"]
