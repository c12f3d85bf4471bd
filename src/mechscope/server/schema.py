"""Request bodies of the OpenAI-compatible API, validated field by field into plain dataclasses.

Every problem becomes a `RequestError` (HTTP 4xx, OpenAI's error object) naming the field, what was expected
and what was given; nothing a request carries reaches the model unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mechscope.errors import MechscopeError
from mechscope.server.config import ServerConfig

_MISSING = object()
ROLES = ("system", "user", "assistant")


class RequestError(MechscopeError):
    """A request the server refuses: HTTP `status` with OpenAI's error object."""

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


class Fields:
    """A JSON object read one typed field at a time; `done()` rejects the keys nobody asked for."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise RequestError(f"{where} must be a JSON object, got {_type_name(data)}", param=where)
        self.data, self.where, self.read = data, where, set()

    def _name(self, key: str) -> str:
        return key if self.where == "body" else f"{self.where}.{key}"

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any = _MISSING, rule: str = "",
            ok=lambda _value: True) -> Any:
        """data[key] if it has one of `kinds` and passes `ok` (`rule` says what ok means), else `default`."""
        self.read.add(key)
        if key not in self.data or (self.data[key] is None and default is not _MISSING):
            if default is _MISSING:
                raise RequestError(f"missing required field {self._name(key)!r}", param=self._name(key))
            return default
        value = self.data[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        numeric = float in kinds and isinstance(value, int) and not isinstance(value, bool)
        typed = numeric or (isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds))
        if not typed or not ok(value):
            names = " or ".join(_type_name(k()) if k is not type(None) else "null" for k in kinds)
            raise RequestError(f"{self._name(key)} must be {names}{' ' + rule if rule else ''}, got {value!r}"[:500],
                               param=self._name(key))
        return float(value) if numeric else value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise RequestError(f"unrecognised field(s) {unknown} in {self.where}", param=self._name(unknown[0]))


@dataclass(frozen=True)
class Sampling:
    """What every generation request shares: length, sampling, stops, and the mechscope extensions."""

    max_tokens: int | None  # None: the server's default, cut to the room the model's context leaves
    temperature: float
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    steering: list = field(default_factory=list)  # raw edit objects, checked against the loaded resources
    monitors: list = field(default_factory=list)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict]
    sampling: Sampling


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompts: list[str]
    sampling: Sampling


def _sampling(body: Fields, config: ServerConfig, length_keys: tuple[str, ...]) -> Sampling:
    lengths = [body.get(key, int, None, f"in 1..{config.max_new_tokens}",
                        lambda v: 1 <= v <= config.max_new_tokens) for key in length_keys]
    stop = body.get("stop", (str, list), [], "of at most 4 non-empty strings",
                    lambda v: isinstance(v, str) and v != "" or isinstance(v, list) and len(v) <= 4 and all(
                        isinstance(s, str) and s for s in v))
    body.get("n", int, 1, "(this server returns one choice per prompt)", lambda v: v == 1)
    for key in ("presence_penalty", "frequency_penalty"):
        body.get(key, float, 0.0, "(penalties are not supported)", lambda v: v == 0)
    body.get("logprobs", (bool, int), False, "(log-probabilities are not returned)", lambda v: not v)
    body.get("user", str, "")
    options = Fields(body.get("stream_options", dict, {}), "stream_options")
    include_usage = options.get("include_usage", bool, False)
    options.done()
    return Sampling(
        max_tokens=next((n for n in lengths if n is not None), None),
        temperature=body.get("temperature", float, 1.0, "in [0, 2]", lambda v: 0 <= v <= 2),
        top_p=body.get("top_p", float, None, "in (0, 1]", lambda v: 0 < v <= 1),
        seed=body.get("seed", int, None),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        stream=body.get("stream", bool, False),
        include_usage=include_usage,
        steering=_edit_list(body, "steering", config),
        monitors=_edit_list(body, "monitors", config))


def _edit_list(body: Fields, key: str, config: ServerConfig) -> list:
    """A steering/monitors value: an array of objects, or {"edits": [...]} for steering (Ember's shape)."""
    value = body.get(key, (list, dict), [])
    if isinstance(value, dict):
        wrapper = Fields(value, key)
        value = wrapper.get("edits", list)
        wrapper.done()
    if len(value) > config.max_edits:
        raise RequestError(f"{key} holds {len(value)} entries, at most {config.max_edits} are allowed", param=key)
    return value


def _content(message: Fields, where: str) -> str:
    """A message's content: a string, or OpenAI's array of {"type": "text", "text": ...} parts."""
    content = message.get("content", (str, list))
    if isinstance(content, str):
        return content
    texts = []
    for number, part in enumerate(content):
        part = Fields(part, f"{where}.content[{number}]")
        part.get("type", str, rule='"text" (only text parts are supported)', ok=lambda v: v == "text")
        texts.append(part.get("text", str))
        part.done()
    return "".join(texts)


def chat_request(data: Any, config: ServerConfig) -> ChatRequest:
    body = Fields(data, "body")
    model = body.get("model", str)
    raw = body.get("messages", list, rule=f"with 1..{config.max_messages} messages",
                   ok=lambda v: 1 <= len(v) <= config.max_messages)
    messages = []
    for number, item in enumerate(raw):
        where = f"messages[{number}]"
        message = Fields(item, where)
        role = message.get("role", str, rule=f"one of {ROLES}", ok=lambda v: v in ROLES)
        messages.append({"role": role, "content": _content(message, where)})
        message.get("name", str, "")
        message.done()
    sampling = _sampling(body, config, ("max_completion_tokens", "max_tokens"))
    body.done()
    return ChatRequest(model, messages, sampling)


def completion_request(data: Any, config: ServerConfig) -> CompletionRequest:
    body = Fields(data, "body")
    model = body.get("model", str)
    prompt = body.get("prompt", (str, list), rule=f"a non-empty string or 1..{config.max_prompts} of them",
                      ok=lambda v: bool(v) if isinstance(v, str) else 1 <= len(v) <= config.max_prompts and all(
                          isinstance(p, str) and p for p in v))
    body.get("echo", bool, False, "(echo is not supported)", lambda v: not v)
    sampling = _sampling(body, config, ("max_tokens",))
    body.done()
    return CompletionRequest(model, [prompt] if isinstance(prompt, str) else prompt, sampling)
