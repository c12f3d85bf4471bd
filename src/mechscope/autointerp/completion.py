"""What every LLM backend speaks: chat messages in, a `Completion` out, behind the `LLMClient` protocol."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mechscope.errors import MechscopeError

ROLES = ("system", "user", "assistant")
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": text}
TopLogprobs = dict[str, float]  # the most likely tokens at one generated position -> natural-log probability


class LLMError(MechscopeError):
    """A request to a language model that failed for good: bad input, a refused request or retries used up."""


class RetryableError(LLMError):
    """A failure worth retrying (rate limit, server error, timeout, dropped connection, malformed reply)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Completion:
    """One model answer with what it cost; `cached` answers were replayed from the response cache for free."""

    text: str  # with a json_schema: the JSON text of the structured answer
    logprobs: list[TopLogprobs] | None = None  # per generated token, where the backend gives them
    input_tokens: int = 0  # 0 where the server reports no usage
    output_tokens: int = 0
    cost_usd: float | None = None  # None: the model is not in the price table
    cached: bool = False


@dataclass(frozen=True)
class Request:
    """Everything that decides an answer, checked at the boundary; backends turn it into their wire format."""

    messages: tuple[Message, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    json_schema: dict | None = None  # JSON schema of an object; the answer's text is JSON that matches it
    logprobs: bool = False

    @classmethod
    def checked(cls, messages: Sequence[Message], max_tokens: int, temperature: float, json_schema: dict | None,
                logprobs: bool) -> Request:
        """A request from user input, with a clear error for anything a server would reject."""
        if isinstance(messages, (str, bytes)) or not messages:
            raise LLMError(f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES or \
                    not isinstance(message.get("content"), str):
                raise LLMError(f"each message must be {{'role': one of {ROLES}, 'content': str}}, got {message!r:.80}")
        if not any(m["role"] == "user" for m in messages):
            raise LLMError(f"messages need at least one 'user' turn, got roles {[m['role'] for m in messages]}")
        if int(max_tokens) < 1 or float(temperature) < 0:
            raise LLMError(f"max_tokens must be >= 1 and temperature >= 0, got {max_tokens} and {temperature}")
        if json_schema is not None and (not isinstance(json_schema, dict) or json_schema.get("type") != "object"):
            raise LLMError(f"json_schema must be a JSON schema dict with \"type\": \"object\", got {json_schema!r:.80}")
        messages = tuple({"role": m["role"], "content": m["content"]} for m in messages)
        return cls(messages, int(max_tokens), float(temperature), json_schema, bool(logprobs))


class LLMClient(Protocol):
    """Anything that answers chat messages; thread-safe, so callers may fan out over latents with threads."""

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict | None = None, logprobs: bool = False,
                 latent: Hashable | None = None) -> Completion:
        """Answer `messages`; `latent` tags the call for per-latent token and cost accounting."""
        ...
