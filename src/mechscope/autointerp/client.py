"""The client every backend runs behind: response cache, retries with backoff, concurrency limit, accounting."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from mechscope.autointerp.accounting import PRICES, Price, UsageLedger, cost_usd, price_for
from mechscope.autointerp.completion import Completion, LLMError, Message, Request, RetryableError
from mechscope.autointerp.hf_backend import HFBackend
from mechscope.autointerp.http_backends import AnthropicBackend, OpenAIBackend
from mechscope.autointerp.response_cache import ResponseCache, request_key

log = logging.getLogger(__name__)


@dataclass
class ClientConfig:
    """How a client talks to its model; the defaults suit a hosted API."""

    max_concurrency: int = 8  # requests in flight at once, over all threads
    timeout_s: float = 60.0  # per request (per socket operation for HTTP)
    max_retries: int = 6
    backoff_s: float = 1.0  # the first retry waits about this long, then it doubles (with jitter)
    max_backoff_s: float = 60.0  # cap on any wait, a server's Retry-After included
    cache_dir: Path | None = None  # None: no persistent response cache
    prices: dict[str, Price] = field(default_factory=dict)  # extends and overrides PRICES


class Backend(Protocol):
    """One way of asking a model, one attempt at a time; the Client adds everything else."""

    model: str
    identity: dict  # what besides the request decides the answer (protocol, model, ...); part of the cache key

    def generate(self, request: Request, timeout_s: float) -> Completion: ...


class Client:
    """An LLMClient over a backend: cached answers are free, failures are retried, usage is booked."""

    def __init__(self, backend: Backend, config: ClientConfig | None = None):
        self.backend = backend
        self.config = config = config or ClientConfig()
        if config.max_concurrency < 1 or config.max_retries < 0 or config.timeout_s <= 0:
            raise LLMError(f"need max_concurrency >= 1, max_retries >= 0, timeout_s > 0; got {config.max_concurrency}, "
                           f"{config.max_retries}, {config.timeout_s}")
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir is not None else None
        self.price = price_for(backend.model, {**PRICES, **config.prices})
        self.usage = UsageLedger()
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._pending: dict[str, Future] = {}  # request key -> its answer, while one thread fetches it
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Client({self.backend!r}, cache={self.cache.path if self.cache is not None else None})"

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict | None = None, logprobs: bool = False,
                 latent: Hashable | None = None) -> Completion:
        """Answer `messages` from the cache or the model; `latent` tags the call in `self.usage`."""
        request = Request.checked(messages, max_tokens, temperature, json_schema, logprobs)
        key = request_key(self.backend.identity, request)
        with self._pending_lock:
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
        if owner:
            try:
                completion = self.cache.get(key) if self.cache is not None else None
                if completion is None:
                    completion = self._fresh(request)
                    if self.cache is not None:
                        self.cache.put(key, completion)
                pending.set_result(completion)
            except BaseException as err:
                pending.set_exception(err)
                raise
            finally:
                with self._pending_lock:
                    del self._pending[key]
        else:  # the same request is in flight on another thread: share its answer, send nothing
            completion = replace(pending.result(), cached=True)
        self.usage.record(completion, latent)
        return completion

    def _fresh(self, request: Request) -> Completion:
        """Ask the backend, retrying retryable failures with exponential backoff, jitter and Retry-After."""
        config = self.config
        wasted = [0, 0]  # tokens of answers that came back but were unusable: paid for all the same
        for attempt in range(config.max_retries + 1):
            try:
                with self._slots:
                    completion = self.backend.generate(request, config.timeout_s)
                if request.json_schema is not None:
                    try:
                        _check_json(completion.text)
                    except RetryableError:
                        wasted = [wasted[0] + completion.input_tokens, wasted[1] + completion.output_tokens]
                        raise
                break
            except RetryableError as err:
                if attempt == config.max_retries:
                    raise LLMError(f"{self.backend.model}: gave up after {attempt + 1} attempts; last: {err}") from None
                wait = err.retry_after_s if err.retry_after_s is not None else \
                    config.backoff_s * 2 ** attempt * random.uniform(0.5, 1.5)
                wait = min(wait, config.max_backoff_s)
                log.warning("%s: retrying in %.2fs after: %s", self.backend.model, wait, err)
                time.sleep(wait)
        completion = replace(completion, input_tokens=completion.input_tokens + wasted[0],
                             output_tokens=completion.output_tokens + wasted[1])
        if completion.cost_usd is None or (any(wasted) and self.price is not None):
            completion = replace(completion, cost_usd=cost_usd(self.price, completion.input_tokens,
                                                                completion.output_tokens))
        return completion


def _check_json(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        raise RetryableError(f"structured output is not JSON: {text[:200]!r}") from None


def make_client(spec: str, *, base_url: str | None = None, cache_dir: Path | str | None = None,
                api_key_env: str | None = None, config: ClientConfig | None = None) -> Client | None:
    """A client from "openai:MODEL", "anthropic:MODEL" or "hf:PATH"; "offline" needs no model and gives None.

    The API key comes from `api_key_env` (default OPENAI_API_KEY / ANTHROPIC_API_KEY) and stays in memory.
    """
    kind, _, name = spec.partition(":")
    if spec == "offline":
        return None
    if kind not in ("openai", "anthropic", "hf") or not name:
        raise LLMError(f"model spec must be offline, openai:MODEL, anthropic:MODEL or hf:PATH, got {spec!r}")
    if kind == "hf" and (base_url or api_key_env):
        raise LLMError(f"{spec} runs in process: it takes no base_url or api_key_env")
    config = replace(config or ClientConfig(), **({"cache_dir": Path(cache_dir)} if cache_dir is not None else {}))
    if kind == "openai":
        return Client(OpenAIBackend(name, base_url, api_key_env), config)
    if kind == "anthropic":
        return Client(AnthropicBackend(name, base_url, api_key_env), config)
    return Client(HFBackend(name), config)
