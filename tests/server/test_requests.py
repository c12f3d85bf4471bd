"""Bad requests get a 4xx naming the field and what was expected; never a 500, never a crash."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import call

CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "the cat"}], "max_tokens": 2,
        "temperature": 0}


@pytest.mark.parametrize("change, status, param, words", [
    ({"model": "gpt-4"}, 404, "model", "does not exist"),
    ({"messages": []}, 400, "messages", "1..64 messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role", "one of"),
    ({"messages": [{"role": "user", "content": 3}]}, 400, "messages[0].content", "a string or an array"),
    ({"max_tokens": 0}, 400, "max_tokens", "in 1..512"),
    ({"max_tokens": 10_000}, 400, "max_tokens", "in 1..512"),
    ({"temperature": "hot"}, 400, "temperature", "a number"),
    ({"temperature": True}, 400, "temperature", "a number"),
    ({"n": 2}, 400, "n", "one choice"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
    ({"frobnicate": 1}, 400, "frobnicate", "unrecognised"),
    ({"steering": [{"vector": "nope"}]}, 400, "steering[0].vector", "one of the loaded vectors ['push']"),
    ({"steering": [{"vector": "push", "latent": 1}]}, 400, "steering[0]", "exactly one"),
    ({"steering": [{"latent": 999}]}, 400, "steering[0].latent", "does not exist"),
    ({"steering": [{"vector": "push", "layers": [7]}]}, 400, "steering[0].layers", "subset of [1]"),
    ({"steering": [{"vector": "push", "op": "explode"}]}, 400, "steering[0].op", "one of"),
    ({"steering": [{"vector": "push", "where": "/etc/passwd"}]}, 400, "steering[0].where", "one of"),
    ({"monitors": [{"vector": "push", "action": "stop"}]}, 400, "monitors[0].threshold", "needs a threshold"),
    ({"monitors": [{"latent": {"dictionary": "../x", "index": 0}}]}, 400, "monitors[0].latent.dictionary",
     "one of ['sae']"),
])
def test_bad_chat_requests_name_the_field(served, change, status, param, words):
    url, _ = served
    code, body = call(url, "/v1/chat/completions", {**CHAT, **change})
    assert code == status, body
    assert body["error"]["param"] == param and words in body["error"]["message"], body


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "not valid JSON"),
    (b'{"model": "tiny-chat", "temperature": NaN}', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_malformed_bodies_are_400(served, raw, words):
    url, _ = served
    code, body = call(url, "/v1/chat/completions", raw)
    assert code == 400 and words in body["error"]["message"]


def test_limits_and_routes(served):
    url, _ = served
    code, body = call(url, "/v1/chat/completions", json.dumps({**CHAT, "pad": "x" * (2 << 20)}).encode())
    assert code == 413
    assert call(url, "/v1/nothing")[0] == 404
    assert call(url, "/v1/models", {"a": 1})[0] == 405
    long = {**CHAT, "messages": [{"role": "user", "content": "cat " * 3000}]}
    code, body = call(url, "/v1/chat/completions", long)
    assert code == 400 and body["error"]["code"] == "context_length_exceeded"
    assert call(url, "/v1/completions", {"model": "tiny-chat", "prompt": ["a"] * 9})[0] == 400
    # the tiny model has 64 positions: an explicit length beyond them is refused, the default is cut to fit
    code, body = call(url, "/v1/chat/completions", {**CHAT, "max_tokens": 64})
    assert code == 400 and body["error"]["code"] == "context_length_exceeded" and body["error"]["param"] == "max_tokens"
    code, body = call(url, "/v1/chat/completions", {**CHAT, "max_tokens": None})
    assert code == 200 and body["usage"]["total_tokens"] <= 64 < body["usage"]["prompt_tokens"] + 128
    assert call(url, "/health")[1]["status"] == "ok"
