"""Chat inputs through the model's own template: round trips, padding, the known greedy answer, clear errors."""

from __future__ import annotations

import pytest
import torch

from mechscope.models.chat import ChatTemplateError, chat_inputs, chat_text, conversation
from tests.conftest import word_tokenizer

QUESTION = "What is the capital of France?"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def test_chat_text_uses_the_template_default_system_prompt_and_generation_prompt(smollm2):
    assert chat_text(smollm2, QUESTION) == (f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
                                            f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    own = chat_text(smollm2, conversation("Hi", system="Be brief.", history=[("2+2?", "4")]),
                    add_generation_prompt=False)
    assert own == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                   "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")


def test_chat_inputs_round_trip_to_the_rendered_text(smollm2):
    chats = [QUESTION, conversation("Hi", system="Be brief.")]
    batch = chat_inputs(smollm2, chats)
    for row, chat in enumerate(chats):
        kept = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert smollm2.tokenizer.decode(kept.tolist()) == chat_text(smollm2, chat)
    assert batch["attention_mask"][:, -1].all()  # left-padded: position -1 is every row's last prompt token


def test_a_left_padded_row_computes_what_it_computes_alone(smollm2):
    with torch.no_grad():
        padded = smollm2(chat_inputs(smollm2, [QUESTION, "Hi"]))[1, -1]
        alone = smollm2(chat_inputs(smollm2, "Hi"))[0, -1]
    torch.testing.assert_close(padded, alone, atol=2e-4, rtol=1e-4)


def test_smollm2_answers_the_capital_of_france_greedily(smollm2):
    batch = chat_inputs(smollm2, QUESTION)
    out = smollm2.hf.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              max_new_tokens=10, do_sample=False)
    answer = smollm2.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.strip() == "The capital of France is Paris."


def test_tokenizer_without_template_and_bad_messages_are_named(smollm2):
    with pytest.raises(ChatTemplateError, match="has none"):
        chat_inputs(word_tokenizer(["hello"]), "hello")
    with pytest.raises(ChatTemplateError, match="'role': one of"):
        chat_inputs(smollm2, [{"role": "narrator", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="empty list"):
        chat_inputs(smollm2, [])
