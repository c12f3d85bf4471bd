"""Query-string parameters read one at a time, each checked against what it may hold (a RequestError if not)."""

from __future__ import annotations

import math

from mechscope.server.schema import RequestError


def _last(query: dict, key: str) -> str | None:
    return query[key][-1] if key in query else None


def integer(query: dict, key: str, default: int, high: int, low: int = 1) -> int:
    raw = _last(query, key)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:  # "¹".isdigit(), int("¹") fails
        raise RequestError(f"query parameter {key} must be an integer in {low}..{high}, got {raw!r}", param=key)
    return int(raw)


def number(query: dict, key: str) -> float | None:
    """A finite number, or None when the parameter is absent."""
    raw = _last(query, key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RequestError(f"query parameter {key} must be a finite number, got {raw!r}", param=key)
    return value


def choice(query: dict, key: str, options: tuple[str, ...], default: str | None) -> str | None:
    raw = _last(query, key)
    if raw is None:
        return default
    if raw not in options:
        raise RequestError(f"query parameter {key} must be one of {options}, got {raw!r}", param=key)
    return raw


def text(query: dict, key: str, longest: int) -> str | None:
    """Non-blank text of at most `longest` characters, or None when absent."""
    raw = _last(query, key)
    if raw is not None and (not raw.strip() or len(raw) > longest):
        raise RequestError(f"query parameter {key} must be 1..{longest} characters of text, got {len(raw)} "
                           "characters" if raw.strip() else f"query parameter {key} must not be blank", param=key)
    return raw


def only(query: dict, known: tuple[str, ...]) -> None:
    """Reject parameters the endpoint does not read."""
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise RequestError(f"unrecognised query parameter(s) {unknown}; this endpoint reads {list(known)}",
                           param=unknown[0])
