"""OpenAI-compatible and Anthropic clients against real loopback servers: success, retries, cache, resume, secrecy."""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mechscope.autointerp import Client, ClientConfig, LLMError, Price, Usage, make_client
from tests.autointerp.servers import FAILURES, AnthropicServer, LoopbackServer, OpenAIServer

KEY = "sk-mechscope-test-9f8e7d6c5b4a3210"
FAST = ClientConfig(timeout_s=0.3, max_retries=3, backoff_s=0.01, max_backoff_s=2.0)
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"],
          "additionalProperties": False}


def ask(i: int) -> list[dict]:
    return [{"role": "system", "content": "You label features."}, {"role": "user", "content": f"tokens {i}"}]


@dataclass
class Loopback:
    server: LoopbackServer
    spec: str
    base_url: str

    def connect(self, cache_dir: Path | None = None, **config) -> Client:
        return make_client(self.spec, base_url=self.base_url, cache_dir=cache_dir, config=replace(FAST, **config))


@pytest.fixture(params=["openai", "anthropic"])
def loopback(request, monkeypatch):
    if request.param == "openai":
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        with OpenAIServer(api_key=KEY, retry_after="0") as server:
            yield Loopback(server, "openai:gpt-4o-mini", server.url + "/v1")
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        with AnthropicServer(api_key=KEY, retry_after="0") as server:
            yield Loopback(server, "anthropic:claude-3-5-haiku-20241022", server.url)


def test_openai_structured_output_logprobs_and_usage(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIServer(api_key=KEY) as server:
        client = make_client("openai:gpt-4o-mini", base_url=server.url + "/v1", config=FAST)
        answer = client.complete(ask(1), max_tokens=50, json_schema=SCHEMA, logprobs=True, latent=7)
    assert json.loads(answer.text) == {"label": "about tokens 1"}
    assert (answer.input_tokens, answer.output_tokens) == (5, 4)  # words in the prompt and in the answer
    assert answer.cost_usd == pytest.approx((5 * 0.15 + 4 * 0.60) / 1e6)  # gpt-4o-mini list price
    assert answer.logprobs == [{word: -0.25, "zzz": -3.0} for word in answer.text.split()]
    sent = server.requests[0]
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["body"]["messages"] == ask(1) and sent["body"]["max_tokens"] == 50
    assert sent["body"]["response_format"] == {"type": "json_schema",
                                               "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    assert sent["body"]["logprobs"] is True and sent["body"]["top_logprobs"] == 5
    assert client.usage.per_latent[7] == Usage(calls=1, input_tokens=5, output_tokens=4, cost_usd=answer.cost_usd)
    assert client.usage.total == client.usage.per_latent[7]


def test_anthropic_system_prompt_tool_output_and_usage(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with AnthropicServer(api_key=KEY) as server:
        client = make_client("anthropic:claude-3-5-haiku-20241022", base_url=server.url, config=FAST)
        structured = client.complete(ask(1), max_tokens=50, json_schema=SCHEMA, latent="L1")
        plain = client.complete(ask(2), logprobs=True, latent="L1")
    assert json.loads(structured.text) == {"label": "about tokens 1"}
    assert plain.text == "echo: tokens 2" and plain.logprobs is None  # Anthropic gives no logprobs
    assert (structured.input_tokens, structured.output_tokens, plain.output_tokens) == (5, 4, 3)
    assert structured.cost_usd == pytest.approx((5 * 0.80 + 4 * 4.00) / 1e6)  # claude-3-5-haiku list price
    sent = server.requests[0]
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["system"] == "You label features."
    assert sent["body"]["messages"] == [{"role": "user", "content": "tokens 1"}]
    assert sent["body"]["tools"][0]["input_schema"] == SCHEMA
    assert sent["body"]["tool_choice"] == {"type": "tool", "name": sent["body"]["tools"][0]["name"]}
    assert "tools" not in server.requests[1]["body"]
    assert client.usage.per_latent["L1"].input_tokens == 10 and client.usage.per_latent["L1"].calls == 2


@pytest.mark.parametrize("failure", FAILURES)
def test_retries_recover_from_each_failure(loopback, failure, tmp_path):
    loopback.server.failures.append(failure)
    client = loopback.connect(tmp_path)
    answer = client.complete(ask(1), json_schema=SCHEMA)
    assert json.loads(answer.text) == {"label": "about tokens 1"}
    assert loopback.server.count == 2 and len(client.cache) == 1  # the failure was never cached


def test_retry_after_is_honoured_and_capped(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIServer(retry_after="1") as server:
        server.failures.append("429")
        client = make_client("openai:m", base_url=server.url + "/v1", config=replace(FAST, max_backoff_s=1.5))
        start = time.monotonic()
        client.complete(ask(1))
        assert time.monotonic() - start >= 0.95  # waited as told, not the 0.01 s backoff
        server.retry_after = "3600"
        server.failures.append("429")
        start = time.monotonic()
        client.complete(ask(2))
        assert time.monotonic() - start < 1.9  # capped at max_backoff_s
    assert server.count == 4


def test_gives_up_after_max_retries_and_does_not_retry_refusals(loopback):
    loopback.server.failures.extend(["500"] * 3)
    with pytest.raises(LLMError, match="gave up after 3 attempts"):
        loopback.connect(max_retries=2).complete(ask(1))
    assert loopback.server.count == 3
    loopback.server.api_key = "another-key"
    with pytest.raises(LLMError, match="HTTP 401"):
        loopback.connect().complete(ask(1))
    assert loopback.server.count == 4  # a 401 is final


def test_second_run_with_the_same_cache_makes_zero_requests(loopback, tmp_path):
    first_client = loopback.connect(tmp_path)
    first = [first_client.complete(ask(i), json_schema=SCHEMA, latent=i) for i in range(4)]
    assert loopback.server.count == 4
    second_client = loopback.connect(tmp_path)  # a new client, as in a new process
    second = [second_client.complete(ask(i), json_schema=SCHEMA, latent=i) for i in range(4)]
    assert loopback.server.count == 4
    assert [c.text for c in second] == [c.text for c in first] and all(c.cached for c in second)
    assert [c.cost_usd for c in second] == [c.cost_usd for c in first]  # what the answer cost when it was made
    assert second_client.usage.total == Usage(calls=4, cached_calls=4)  # but this run spent nothing
    second_client.complete(ask(0), json_schema=SCHEMA, max_tokens=99)  # other parameters: another key
    assert loopback.server.count == 5


def test_resumed_run_repeats_no_answered_request(loopback, tmp_path):
    loopback.server.failures.extend([None, None, None, "500"])
    interrupted = loopback.connect(tmp_path, max_retries=0)
    with pytest.raises(LLMError):
        for i in range(6):
            interrupted.complete(ask(i))
    resumed = [loopback.connect(tmp_path).complete(ask(i)) for i in range(6)]
    answered = Counter(r["body"]["messages"][-1]["content"] for r in loopback.server.requests if r["status"] == 200)
    assert answered == {f"tokens {i}": 1 for i in range(6)}
    assert loopback.server.count == 7  # 3 answered, 1 failed, then the 3 left
    assert [c.cached for c in resumed] == [True] * 3 + [False] * 3


def test_api_key_is_sent_but_never_stored_logged_or_shown(loopback, tmp_path, caplog):
    client = loopback.connect(tmp_path)
    loopback.server.failures.append("500")  # its error body echoes the key, and the retry is logged
    client.complete(ask(1), json_schema=SCHEMA)
    assert loopback.server.given_key_of(0) == KEY
    stored = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert stored and not any(KEY.encode() in data for data in stored)
    assert "retrying" in caplog.text and "[redacted]" in caplog.text and KEY not in caplog.text
    assert KEY not in repr(client)
    loopback.server.api_key = "another-key"  # the 401 body echoes the key we sent
    with pytest.raises(LLMError) as info:
        client.complete(ask(2))
    shown = "".join(traceback.format_exception(info.value))
    assert "HTTP 401" in shown and "[redacted]" in shown and KEY not in shown


def test_key_required_only_for_the_official_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        make_client("openai:gpt-4o-mini")
    with pytest.raises(LLMError, match="MY_KEY"):
        make_client("openai:m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_KEY")
    with OpenAIServer() as server:  # a local server (vLLM, Ollama) needs no key
        answer = make_client("openai:llama3:8b", base_url=server.url + "/v1", config=FAST).complete(ask(1))
    assert answer.text == "echo: tokens 1" and "authorization" not in server.requests[0]["headers"]
    assert server.requests[0]["body"]["model"] == "llama3:8b"


def test_concurrency_limit_and_unpriced_accounting():
    with OpenAIServer(delay_s=0.1) as server:
        client = make_client("openai:local-model", base_url=server.url + "/v1",
                             config=replace(FAST, max_concurrency=3, timeout_s=5))
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: client.complete(ask(i), latent=i % 2), range(12)))
    assert server.max_in_flight == 3
    assert [a.text for a in answers] == [f"echo: tokens {i}" for i in range(12)]
    assert client.usage.total == Usage(calls=12, input_tokens=60, output_tokens=36, unpriced_calls=12)
    assert client.usage.per_latent[0] == client.usage.per_latent[1] == Usage(6, 0, 30, 18, 0.0, 6)


def test_price_override():
    with OpenAIServer() as server:
        client = make_client("openai:local-model", base_url=server.url + "/v1",
                             config=replace(FAST, prices={"local-model": Price(1.0, 2.0)}))
        answer = client.complete(ask(1))
    assert answer.cost_usd == pytest.approx((5 * 1.0 + 3 * 2.0) / 1e6)
    assert client.usage.total.cost_usd == pytest.approx(answer.cost_usd)


def test_identical_requests_in_flight_at_once_are_sent_once():
    with OpenAIServer(delay_s=0.2) as server:
        client = make_client("openai:local-model", base_url=server.url + "/v1", config=replace(FAST, timeout_s=5))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: client.complete(ask(0), latent=i), range(8)))
    assert server.count == 1 and {a.text for a in answers} == {"echo: tokens 0"}
    assert client.usage.total.calls == 8 and client.usage.total.cached_calls == 7


def test_reasoning_models_get_max_completion_tokens_and_no_temperature():
    with OpenAIServer() as server:
        for model in ("gpt-5-mini", "openai/o4-mini", "gpt-4o-mini"):
            make_client(f"openai:{model}", base_url=server.url + "/v1", config=FAST).complete(ask(1), max_tokens=20)
    reasoning, router, classic = (r["body"] for r in server.requests)
    assert reasoning["max_completion_tokens"] == router["max_completion_tokens"] == 2048
    assert "temperature" not in reasoning and "max_tokens" not in reasoning
    assert classic["max_tokens"] == 20 and classic["temperature"] == 0.0 and "max_completion_tokens" not in classic


def test_tokens_of_an_unusable_structured_answer_are_still_booked(loopback, tmp_path):
    loopback.server.failures.append("prose")
    client = loopback.connect(tmp_path)
    client.complete(ask(1), json_schema=SCHEMA)
    clean = loopback.connect(tmp_path / "other").complete(ask(1), json_schema=SCHEMA)
    assert client.usage.total.input_tokens == 2 * clean.input_tokens  # the prose attempt's prompt, then the good one
    assert client.usage.total.output_tokens > clean.output_tokens
