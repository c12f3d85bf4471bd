"""The in-process Hugging Face backend against a hand-rolled greedy decode of the same tiny model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from mechscope.autointerp import ClientConfig, LLMError, make_client
from tests.conftest import tiny_config, word_tokenizer

WORDS = "you label features tokens of the cat dog sat on a mat".split()
MESSAGES = [{"role": "system", "content": "you label features"}, {"role": "user", "content": "the cat sat on a mat"}]
TEMPLATE = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}assistant :"


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = word_tokenizer(WORDS)
    tokenizer.chat_template = TEMPLATE
    config = tiny_config("llama")
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = None  # a random model would stop at random
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def greedy(model, ids: torch.Tensor, steps: int) -> tuple[list[int], list[torch.Tensor]]:
    """Argmax decoding by hand: the new ids and the log-probabilities at each step."""
    new, logprobs = [], []
    with torch.no_grad():
        for _ in range(steps):
            lp = torch.log_softmax(model(ids).logits[0, -1], dim=-1)
            new.append(int(lp.argmax()))
            logprobs.append(lp)
            ids = torch.cat([ids, torch.tensor([[new[-1]]])], dim=1)
    return new, logprobs


def test_greedy_answer_tokens_and_logprobs_match_a_manual_decode(lm_dir, tmp_path):
    client = make_client(f"hf:{lm_dir}", cache_dir=tmp_path)
    answer = client.complete(MESSAGES, max_tokens=5, logprobs=True, latent=3)
    backend = client.backend
    prompt = backend.tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt == "system : you label features user : the cat sat on a mat assistant :"
    ids = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    new, logprobs = greedy(backend.lm, ids, 5)
    assert answer.text == backend.tokenizer.decode(new, skip_special_tokens=True).strip()
    assert (answer.input_tokens, answer.output_tokens, answer.cost_usd) == (ids.shape[1], 5, 0.0)
    for step, (top, lp) in enumerate(zip(answer.logprobs, logprobs)):
        assert len(top) == 5
        best = max(top, key=top.get)
        assert best == backend.tokenizer.decode([new[step]])
        assert top[best] == pytest.approx(float(lp.max()), abs=1e-5)
    again = client.complete(MESSAGES, max_tokens=5, logprobs=True)
    assert again.cached and again.text == answer.text and again.logprobs == answer.logprobs
    assert client.usage.per_latent[3].output_tokens == 5 and client.usage.total.cached_calls == 1


def test_without_a_chat_template_turns_are_role_prefixed(lm_dir):
    client = make_client(f"hf:{lm_dir}")
    client.backend.tokenizer.chat_template = None
    ids = client.backend.prompt_ids(MESSAGES)
    expected = "system: you label features\n\nuser: the cat sat on a mat\n\nassistant:"
    assert ids[0].tolist() == client.backend.tokenizer(expected).input_ids


def test_structured_output_that_is_not_json_is_retried_then_refused_and_never_cached(lm_dir, tmp_path):
    client = make_client(f"hf:{lm_dir}", cache_dir=tmp_path, config=ClientConfig(max_retries=1, backoff_s=0.0))
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    with pytest.raises(LLMError, match="gave up after 2 attempts.*not JSON"):
        client.complete(MESSAGES, max_tokens=3, json_schema=schema)
    assert len(client.cache) == 0
