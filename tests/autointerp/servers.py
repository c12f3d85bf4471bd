"""Loopback HTTP servers speaking OpenAI chat completions and Anthropic Messages, with scripted failures."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAILURES = ("429", "500", "slow", "malformed", "prose")  # prose: structured output that is not JSON


def words(text: str) -> int:
    return len(text.split())


class LoopbackServer:
    """A real ThreadingHTTPServer on 127.0.0.1 (random port) answering one POST path; records every request.

    `failures` is consumed one entry per request (None answers normally). Error replies echo the key the client
    sent, as careless servers do, so tests can check the client scrubs it.
    """

    path = ""

    def __init__(self, api_key: str | None = None, delay_s: float = 0.0, slow_s: float = 1.0,
                 retry_after: str = "1"):
        self.api_key, self.delay_s, self.slow_s, self.retry_after = api_key, delay_s, slow_s, retry_after
        self.failures: deque[str | None] = deque()
        self.requests: list[dict] = []  # {"headers", "body", "status"}
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def count(self) -> int:
        return len(self.requests)

    def __enter__(self) -> LoopbackServer:
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def given_key(self, headers) -> str | None:
        raise NotImplementedError

    def given_key_of(self, index: int) -> str | None:
        """The API key request `index` carried."""
        return self.given_key(self.requests[index]["headers"])

    def reply(self, body: dict, structured_text: str | None) -> dict:
        """The protocol's success reply; `structured_text` overrides the JSON answer of a structured request."""
        raise NotImplementedError

    def answer(self, body: dict) -> str:
        """Known answers: the last user turn echoed, or as {"label": ...} JSON when structured output is asked."""
        last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return json.dumps({"label": f"about {last}"}) if self.structured(body) else f"echo: {last}"

    def structured(self, body: dict) -> bool:
        raise NotImplementedError

    def protocol_error(self, headers) -> str | None:
        """Why the headers break the protocol, or None."""
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["content-length"])))
        with self._lock:
            failure = self.failures.popleft() if self.failures else None
            record = {"headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body, "status": None}
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            key = self.given_key(handler.headers)
            echo = {"error": f"request failed (key {key})"}
            if handler.path != self.path:
                record["status"] = _send(handler, 404, echo)
            elif (problem := self.protocol_error(handler.headers)) is not None:
                record["status"] = _send(handler, 400, {"error": problem})
            elif failure == "429":
                record["status"] = _send(handler, 429, echo, {"retry-after": self.retry_after})
            elif failure == "500":
                record["status"] = _send(handler, 500, echo)
            elif failure == "malformed":
                record["status"] = _send(handler, 200, b'{"choices": [{"message": ')
            elif self.api_key is not None and key != self.api_key:
                record["status"] = _send(handler, 401, {"error": f"invalid API key {key}"})
            else:
                time.sleep(self.slow_s if failure == "slow" else self.delay_s)
                prose = "Sure! The label is: numbers" if failure == "prose" else None
                record["status"] = _send(handler, 200, self.reply(body, prose))
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            record["status"] = "dropped"
        finally:
            with self._lock:
                self.in_flight -= 1


def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict | bytes, headers: dict | None = None) -> int:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    handler.send_response(status)
    for name, value in {"content-type": "application/json", "content-length": str(len(data)),
                        **(headers or {})}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
    return status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.owner.handle(self)

    def log_message(self, *args) -> None:
        pass


class OpenAIServer(LoopbackServer):
    """OpenAI chat completions at /v1/chat/completions (base_url = url + "/v1")."""

    path = "/v1/chat/completions"

    def given_key(self, headers) -> str | None:
        auth = headers.get("authorization") or ""
        return auth.removeprefix("Bearer ") or None

    def structured(self, body: dict) -> bool:
        return "response_format" in body

    def reply(self, body: dict, structured_text: str | None) -> dict:
        text = structured_text or self.answer(body)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [
                {"token": w, "logprob": -0.25,
                 "top_logprobs": [{"token": w, "logprob": -0.25}, {"token": "zzz", "logprob": -3.0}]
                 [:body["top_logprobs"]]} for w in text.split()]}
        prompt = sum(words(m["content"]) for m in body["messages"])
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"], "choices": [choice],
                "usage": {"prompt_tokens": prompt, "completion_tokens": words(text),
                          "total_tokens": prompt + words(text)}}


class AnthropicServer(LoopbackServer):
    """Anthropic Messages at /v1/messages (base_url = url); insists on the anthropic-version header."""

    path = "/v1/messages"

    def given_key(self, headers) -> str | None:
        return headers.get("x-api-key")

    def protocol_error(self, headers) -> str | None:
        return None if headers.get("anthropic-version") else "anthropic-version header required"

    def structured(self, body: dict) -> bool:
        return "tools" in body

    def reply(self, body: dict, structured_text: str | None) -> dict:
        text = structured_text or self.answer(body)
        if self.structured(body) and structured_text is None:
            block = {"type": "tool_use", "id": "toolu_1", "name": body["tool_choice"]["name"],
                     "input": json.loads(text)}
        else:
            block = {"type": "text", "text": text}
        prompt = words(body.get("system", "")) + sum(words(m["content"]) for m in body["messages"])
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [block],
                "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
                "usage": {"input_tokens": prompt, "output_tokens": words(text)}}
