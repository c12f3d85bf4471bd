"""Binding, tokens, the waiting-room limit and disconnects: one client can neither reach nor hold the model."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from mechscope.errors import MechscopeError
from mechscope.server import ServerConfig, make_server
from tests.server.conftest import call

CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "the cat"}], "max_tokens": 2,
        "temperature": 0}


def _start(resources, **config):
    server = make_server(resources, ServerConfig(port=0, **config))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # a quick shutdown
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_non_loopback_bind_needs_a_token():
    with pytest.raises(MechscopeError, match="without a bearer token"):
        ServerConfig(host="0.0.0.0")
    with pytest.raises(MechscopeError, match="at least 16"):
        ServerConfig(host="0.0.0.0", token="short")
    assert ServerConfig(host="0.0.0.0", token="x" * 16).token == "x" * 16
    assert ServerConfig(host="localhost").token is None


def test_bearer_token_is_required_when_set(served):
    _, resources = served
    server, url = _start(resources, token="s3cret-s3cret-s3cret")
    try:
        code, body = call(url, "/v1/models")
        assert code == 401 and body["error"]["type"] == "authentication_error"
        assert call(url, "/v1/chat/completions", CHAT, {"Authorization": "Bearer wrong"})[0] == 401
        assert call(url, "/v1/models", headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})[0] == 200
        assert call(url, "/health")[0] == 200  # liveness needs no token and says nothing about the model's use
    finally:
        server.shutdown()
        server.server_close()


def _post_raw(port: int, body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def test_a_client_that_disconnects_mid_stream_frees_the_model(served):
    url, resources = served
    port = int(url.rsplit(":", 1)[1])
    sock = _post_raw(port, {**CHAT, "max_tokens": None, "stream": True})  # as long as the model's context allows
    received = b""
    while b"data: " not in received:  # the stream has started
        received += sock.recv(4096)
    sock.close()
    started = time.monotonic()
    assert call(url, "/v1/chat/completions", CHAT)[0] == 200  # got the model back
    assert time.monotonic() - started < 20
    assert resources.model._lock.acquire(timeout=5)  # nobody holds it now
    resources.model._lock.release()


def test_requests_beyond_the_waiting_limit_get_429(served):
    _, resources = served
    server, url = _start(resources, max_waiting=1)
    port = server.server_address[1]
    try:
        resources.model._lock.acquire()  # the model is busy: the first request waits for it
        try:
            waiting = _post_raw(port, CHAT)
            deadline = time.monotonic() + 20
            while server.state.waiting.count < 1:  # the first request has taken the only place in the queue
                assert time.monotonic() < deadline
                time.sleep(0.002)
            code, body = call(url, "/v1/chat/completions", CHAT)
            assert code == 429 and body["error"]["type"] == "rate_limit_error"
        finally:
            resources.model._lock.release()
        assert waiting.recv(4096).startswith(b"HTTP/1.1 200")
        waiting.close()
        assert call(url, "/v1/chat/completions", CHAT)[0] == 200
    finally:
        server.shutdown()
        server.server_close()
