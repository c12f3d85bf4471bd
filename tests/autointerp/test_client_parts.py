"""The client's pieces that need no server: request checks, cache keys, prices, Retry-After, model specs."""

from __future__ import annotations

import email.utils
import time

import pytest

from mechscope.autointerp import LLMError, Price, Request, make_client, price_for, request_key
from mechscope.autointerp.http_backends import retry_after_s

USER = [{"role": "user", "content": "label this"}]
IDENTITY = {"protocol": "openai-chat", "model": "m", "top_logprobs": 5}


@pytest.mark.parametrize("messages, kwargs, match", [
    ("label this", {}, "non-empty list"),
    ([], {}, "non-empty list"),
    ([{"role": "bot", "content": "hi"}], {}, "role"),
    ([{"role": "system", "content": "be brief"}], {}, "'user' turn"),
    (USER, {"max_tokens": 0}, "max_tokens"),
    (USER, {"temperature": -1.0}, "temperature"),
    (USER, {"json_schema": {"type": "array"}}, '"type": "object"'),
])
def test_bad_requests_are_refused_before_any_call(messages, kwargs, match):
    args = {"max_tokens": 16, "temperature": 0.0, "json_schema": None, "logprobs": False, **kwargs}
    with pytest.raises(LLMError, match=match):
        Request.checked(messages, **args)


def test_cache_key_is_canonical_and_covers_everything_that_decides_the_answer():
    def key(identity=IDENTITY, messages=USER, max_tokens=16, temperature=0.0, json_schema=None, logprobs=False):
        return request_key(identity, Request.checked(messages, max_tokens, temperature, json_schema, logprobs))

    base = key()
    assert len(base) == 64 and base == key(temperature=0)  # 0 and 0.0 are one request
    assert base == key(messages=[{"content": "label this", "role": "user", "name": "ignored"}])
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}}
    assert key(json_schema=schema) == key(json_schema={"properties": {"b": {"type": "number"},
                                                                      "a": {"type": "string"}}, "type": "object"})
    changed = [key(identity={**IDENTITY, "model": "n"}), key(identity={**IDENTITY, "protocol": "anthropic-messages"}),
               key(messages=[{"role": "user", "content": "label that"}]), key(max_tokens=17), key(temperature=0.5),
               key(json_schema=schema), key(logprobs=True)]
    assert len({base, *changed}) == 1 + len(changed)


def test_prices_match_snapshots_and_router_names():
    assert price_for("gpt-4o-mini") == Price(0.15, 0.60)
    assert price_for("gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)  # the longest matching entry wins
    assert price_for("gpt-4o-2024-08-06") == Price(2.50, 10.00)
    assert price_for("openai/gpt-4.1-nano") == Price(0.10, 0.40)
    assert price_for("claude-3-5-haiku-20241022") == Price(0.80, 4.00)
    assert price_for("llama3:8b") is None and price_for("gpt-4ox") is None
    assert price_for("llama3:8b", {"llama3:8b": Price(0, 0)}) == Price(0, 0)


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_s("3") == 3.0 and retry_after_s("0.5") == 0.5 and retry_after_s("-2") == 0.0
    assert retry_after_s(email.utils.formatdate(time.time() + 30, usegmt=True)) == pytest.approx(30, abs=2)
    assert retry_after_s(None) is None and retry_after_s("soon") is None


def test_model_specs():
    assert make_client("offline") is None  # the offline explainer needs no model
    for spec in ["gpt-4o", "openai:", "cohere:command", "hf"]:
        with pytest.raises(LLMError, match="openai:MODEL, anthropic:MODEL or hf:PATH"):
            make_client(spec)
    with pytest.raises(LLMError, match="takes no base_url"):
        make_client("hf:some/model", base_url="http://127.0.0.1:8000/v1")
    with pytest.raises(LLMError, match="hf:/no/such/model"):
        make_client("hf:/no/such/model")
