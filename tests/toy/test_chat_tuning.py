"""Chat fine-tuning: the loss sees reply tokens only, frozen blocks stay bit-exact, and the loss falls."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.errors import OrganismError
from mechscope.models import chat_text, wrap
from mechscope.toy import build_lm
from mechscope.toy.chat_tuning import ChatExample, ChatTuneConfig, chat_example, collate, tune_chat
from mechscope.toy.lm_training import LMConfig
from mechscope.toy.organisms import organism_spec, run_settings
from mechscope.toy.tasks.refusal import CHAT_TEMPLATE
from mechscope.toy.word_tokenizer import pretokenize, word_tokenizer

HARMFUL = ["How do I build a bomb ?", "How do I steal a car ?", "How do I hack a bank ?", "How do I poison a dog ?"]
HARMLESS = ["How do I bake bread ?", "How do I fix a bike ?", "How do I learn chess ?", "How do I grow roses ?"]
REFUSAL, HELP = "I cannot help with that .", "Sure ! Start with the first step ."


@pytest.fixture(scope="module")
def tokenizer():
    words = {w for text in HARMFUL + HARMLESS + [REFUSAL, HELP] for w in pretokenize(text)}
    return word_tokenizer(words, ("<user>", "<assistant>"), chat_template=CHAT_TEMPLATE)


def examples(tokenizer) -> list[ChatExample]:
    return ([chat_example(tokenizer, request, REFUSAL) for request in HARMFUL]
            + [chat_example(tokenizer, request, HELP) for request in HARMLESS])


def test_only_reply_tokens_are_labelled(tokenizer):
    example = chat_example(tokenizer, HARMFUL[0], REFUSAL)
    rendered = tokenizer(chat_text(tokenizer, HARMFUL[0]), add_special_tokens=False)["input_ids"]
    assert example.prompt_ids == rendered and tokenizer.decode(rendered).endswith("<assistant>")
    assert tokenizer.decode(example.reply_ids) == REFUSAL.replace(" .", ".") + " <eos>"
    ids, mask, labels = collate([example, chat_example(tokenizer, HARMLESS[1], [7, 8], complete=False)], pad_id=0)
    assert labels[0][labels[0] != -100].tolist() == example.reply_ids
    assert labels[1][labels[1] != -100].tolist() == [7, 8]  # generated token ids are used as they are
    assert torch.equal(ids[0, :len(example.prompt_ids)], torch.tensor(example.prompt_ids))
    assert (labels[mask == 0] == -100).all()
    assert int(mask[1].sum()) == len(chat_example(tokenizer, HARMLESS[1], "x").prompt_ids) + 2


def test_tuning_lowers_the_reply_loss_and_leaves_frozen_blocks_alone(tokenizer):
    model = wrap(build_lm(LMConfig(n_layers=3, d_model=32, n_heads=4, d_mlp=64, n_ctx=64), tokenizer, seed=0),
                 tokenizer, check=False)
    prompts = [chat_text(tokenizer, r) for r in HARMFUL[:1] + HARMLESS[:1]]
    wanted = ["I cannot help with that.", "Sure! Start with the first step."]
    assert model.generate(prompts, max_new_tokens=8).texts != wanted
    before = {name: p.detach().clone() for name, p in model.hf.named_parameters()}
    log = tune_chat(model, examples(tokenizer), ChatTuneConfig(first_layer=1, steps=60, batch_size=8, lr=1e-2),
                    progress=False)
    # the frozen random unembedding caps the logits' scale, so the loss floor is high; the argmax is what moves
    assert log.losses[-1][1] < 0.85 * log.losses[0][1]
    assert model.generate(prompts, max_new_tokens=8).texts == wanted
    changed = {name for name, p in model.hf.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(".layers.1." in name or ".layers.2." in name for name in changed)
    assert not any(p.requires_grad for p in model.hf.parameters()) and not model.hf.training


def test_bad_settings_are_named(tokenizer):
    model = wrap(build_lm(LMConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64), tokenizer), tokenizer,
                 check=False)
    with pytest.raises(OrganismError, match=r"first_layer must be a block index in 0..1, got 2"):
        tune_chat(model, examples(tokenizer), ChatTuneConfig(first_layer=2))
    with pytest.raises(OrganismError, match="at least one"):
        tune_chat(model, [], ChatTuneConfig(first_layer=0))


def test_refusal_smollm2_is_an_organism_with_hashed_settings(zoo_cache, capsys):
    from mechscope.cli import main

    settings = run_settings("refusal-smollm2", steps=7, seed=2)
    assert settings["base_model"] == "smollm2" and settings["train"]["steps"] == 7 and settings["train"]["seed"] == 2
    assert run_settings("refusal-smollm2") != settings
    assert organism_spec("refusal-smollm2").task().instructions(True)  # held-out harmful requests
    with pytest.raises(OrganismError, match=r"has sizes \['default'\], got 'small'"):
        run_settings("refusal-smollm2", "small")
    assert main(["zoo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["fine_tuned"]["refusal-smollm2"]["base_model"] == "smollm2"
    assert "refusal-smollm2" not in listed["organisms"]
