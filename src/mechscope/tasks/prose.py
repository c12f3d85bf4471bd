"""Template text as prose: the organisms' templates space out punctuation ("store , John"); prose does not."""

from __future__ import annotations

import re


def attach_punctuation(text: str) -> str:
    """"store , John" -> "store, John" (word-level tokenizers cut both the same; BPE ones do not)."""
    return re.sub(r" ([,.?!:])", r"\1", text)
