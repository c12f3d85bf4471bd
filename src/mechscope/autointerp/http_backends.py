"""Backends that speak HTTP: OpenAI-compatible chat completions and Anthropic's Messages API (stdlib only)."""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from mechscope.autointerp.completion import Completion, LLMError, Request, RetryableError

RETRYABLE_STATUS = {408, 409, 425, 429}  # and every 5xx
STRUCTURED_TOOL = "record_answer"  # the one tool Anthropic is made to call for structured output
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
REASONING_BUDGET = 2048  # output tokens a reasoning model gets at least, so thinking leaves room for the answer


def retry_after_s(header: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def post_json(url: str, body: dict, headers: dict[str, str], timeout_s: float, secret: str | None) -> dict:
    """POST `body` as JSON and decode the JSON reply; retryable failures raise RetryableError, others LLMError.

    `secret` (the API key) is scrubbed from every error message, even where a server echoes it back.
    """
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "user-agent": "mechscope",
                                              **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        detail = redact(err.read(500).decode("utf-8", "replace"), secret)
        message = f"{url} answered HTTP {err.code}: {detail}"
        if err.code in RETRYABLE_STATUS or err.code >= 500:
            raise RetryableError(message, retry_after_s(err.headers.get("retry-after"))) from None
        raise LLMError(message) from None
    except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, truncated
        raise RetryableError(f"{url}: {redact(repr(err), secret)}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise RetryableError(f"{url} sent malformed JSON: {redact(raw[:200].decode('utf-8', 'replace'), secret)!r}") \
            from None


@contextmanager
def reply_fields(url: str) -> Iterator[None]:
    """Turn a reply that lacks the fields the protocol promises into a RetryableError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, StopIteration) as err:
        raise RetryableError(f"{url} sent a reply without the expected field {err!r}") from None


def api_key(env_var: str, required: bool) -> str | None:
    """The key in `env_var`; only its name ever appears in messages."""
    key = os.environ.get(env_var) or None
    if key is None and required:
        raise LLMError(f"no API key: set the environment variable {env_var}")
    return key


def is_reasoning_model(model: str) -> bool:
    """OpenAI's o-series and GPT-5 families (also behind a router prefix such as "openai/")."""
    return model.rsplit("/", 1)[-1].startswith(REASONING_PREFIXES)


class OpenAIBackend:
    """OpenAI-compatible `/chat/completions`: OpenAI, vLLM, Ollama, llama.cpp server, OpenRouter.

    `base_url` ends where the SDKs' does (".../v1"); a key is required only for the official endpoint.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None,
                 top_logprobs: int = 5):
        self.model = model
        self.url = (base_url or OPENAI_URL).rstrip("/") + "/chat/completions"
        self._key = api_key(api_key_env or "OPENAI_API_KEY", required=base_url is None or api_key_env is not None)
        self.top_logprobs = top_logprobs
        self.identity = {"protocol": "openai-chat", "model": model, "top_logprobs": top_logprobs}

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, url={self.url!r})"

    def generate(self, request: Request, timeout_s: float) -> Completion:
        body = {"model": self.model, "messages": list(request.messages)}
        if is_reasoning_model(self.model):  # they take max_completion_tokens, spend part of it thinking, and
            body["max_completion_tokens"] = max(request.max_tokens, REASONING_BUDGET)  # reject a temperature
        else:
            body.update(max_tokens=request.max_tokens, temperature=request.temperature)
        if request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True}}
        if request.logprobs:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        headers = {"authorization": f"Bearer {self._key}"} if self._key else {}
        reply = post_json(self.url, body, headers, timeout_s, self._key)
        with reply_fields(self.url):
            choice = reply["choices"][0]
            usage = reply.get("usage") or {}
            positions = (choice.get("logprobs") or {}).get("content")
            return Completion(
                text=choice["message"]["content"] or "",
                logprobs=[{alt["token"]: alt["logprob"] for alt in p["top_logprobs"]} for p in positions]
                if positions else None,
                input_tokens=usage.get("prompt_tokens", 0), output_tokens=usage.get("completion_tokens", 0))


class AnthropicBackend:
    """Anthropic's Messages API (`/v1/messages`); structured output through one forced tool call."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None):
        self.model = model
        self.url = (base_url or ANTHROPIC_URL).rstrip("/") + "/v1/messages"
        self._key = api_key(api_key_env or "ANTHROPIC_API_KEY", required=base_url is None or api_key_env is not None)
        self.identity = {"protocol": "anthropic-messages", "model": model}

    def __repr__(self) -> str:
        return f"AnthropicBackend(model={self.model!r}, url={self.url!r})"

    def generate(self, request: Request, timeout_s: float) -> Completion:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body = {"model": self.model, "max_tokens": request.max_tokens, "temperature": request.temperature,
                "messages": [m for m in request.messages if m["role"] != "system"]}
        if system:
            body["system"] = system
        if request.json_schema is not None:
            body["tools"] = [{"name": STRUCTURED_TOOL, "description": "Record the answer in this structure.",
                              "input_schema": request.json_schema}]
            body["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}
        headers = {"anthropic-version": ANTHROPIC_VERSION, **({"x-api-key": self._key} if self._key else {})}
        reply = post_json(self.url, body, headers, timeout_s, self._key)
        with reply_fields(self.url):
            blocks = reply["content"]
            tool = [b["input"] for b in blocks if b["type"] == "tool_use"] if request.json_schema is not None else []
            # without the tool call the text goes back as is: the Client retries it as unusable and books its tokens
            text = json.dumps(tool[0]) if tool else "".join(b["text"] for b in blocks if b["type"] == "text")
            return Completion(text=text, input_tokens=reply["usage"]["input_tokens"],
                              output_tokens=reply["usage"]["output_tokens"])
