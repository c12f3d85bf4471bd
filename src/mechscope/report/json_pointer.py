"""RFC 6901 JSON pointers: build one from keys, resolve one in a document, and carry one in a URI fragment."""

from __future__ import annotations

from urllib.parse import quote, unquote

from mechscope.errors import MechscopeError


def pointer(*keys: str | int) -> str:
    """The pointer to document[k0][k1]...: "~" is written "~0" and "/" is written "~1" (RFC 6901 section 3)."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in keys)


def resolve(document, path: str):
    """The value `path` points at in `document` (lists take decimal indices)."""
    if path and not path.startswith("/"):
        raise MechscopeError(f"a JSON pointer starts with '/', got {path!r}")
    value = document
    for token in path.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise MechscopeError(f"JSON pointer {path!r} does not resolve: no {key!r}") from err
    return value


def fragment(path: str) -> str:
    """`path` as a URI fragment (RFC 6901 section 6: percent-encoded UTF-8)."""
    return "#" + quote(path, safe="/~-._!$&'()*+,;=:@")


def from_fragment(text: str) -> str:
    """The pointer a URI fragment (with or without its "#") carries."""
    return unquote(text.removeprefix("#"))
