"""ServerConfig: where the server listens, who may call it, and the limits every request is held to."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from mechscope.errors import MechscopeError

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServerConfig:
    """Loopback by default; a non-loopback bind needs a bearer token. Limits keep one client from holding the
    model: body size, prompts per request, prompt and generation length, requests waiting for the model."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required as "Authorization: Bearer <token>" when set
    max_body_bytes: int = 1 << 20
    max_new_tokens: int = 512
    default_new_tokens: int = 128
    max_prompt_tokens: int = 2048
    max_prompts: int = 8  # prompts in one /v1/completions request
    max_messages: int = 64
    max_edits: int = 16  # steering edits or monitors in one request
    max_waiting: int = 8  # requests queued for the model at once; more get HTTP 429

    def __post_init__(self):
        if not 0 <= self.port < 65536:
            raise MechscopeError(f"port must be in 0..65535, got {self.port}")
        if self.token is not None and len(self.token) < 16:
            raise MechscopeError("a bearer token must be at least 16 characters long")
        if not is_loopback(self.host) and self.token is None:
            raise MechscopeError(f"refusing to listen on {self.host!r} without a bearer token: anyone who can reach "
                                 "it could drive the model; pass --token (or bind 127.0.0.1)")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
