"""Whether the Hugging Face hub can be reached, decided fast (HF's own clients retry for tens of seconds)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub resolves and answers, checked fast instead of via HF's slow retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
