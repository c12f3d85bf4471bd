"""CLI flags generated from config dataclasses, so a verb's flags and defaults cannot drift from its config."""

from __future__ import annotations

import argparse
import inspect
import re
from dataclasses import MISSING, Field, fields
from functools import cache

from mechscope.errors import MechscopeError


def _count(text: str) -> int:
    """"1e6" style accepted for integer counts."""
    return int(float(text))


_SCALARS = {"int": _count, "float": float, "str": str}


@cache
def field_comments(config_type) -> dict[str, str]:
    """The trailing `# comment` of each field line in a config's source: its flag's help text."""
    try:
        lines = inspect.getsource(config_type).splitlines()
    except (OSError, TypeError):
        return {}
    found = (re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line) for line in lines)
    return {m.group(1): m.group(2) for m in found if m}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_default(f: Field):
    """A dataclass field's default (calling its factory); MISSING when it has none."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _parser_for(type_name: str):
    """(argparse type, container) for a field's annotation, or None when the CLI cannot express it."""
    base = type_name.replace(" | None", "").replace(" ", "")
    if base in _SCALARS:
        return _SCALARS[base], None
    for container in ("list", "tuple"):
        if base.startswith(container + "["):
            item = base[len(container) + 1:-1].split(",")[0]
            if item in _SCALARS:
                return _SCALARS[item], container
    return None


def _csv(item, container: str):
    def parse(text: str):
        values = [item(v) for v in text.split(",") if v.strip()]
        return tuple(values) if container == "tuple" else values
    return parse


def add_config_flags(parser: argparse.ArgumentParser, config_type, skip: tuple[str, ...] = (),
                     only: tuple[str, ...] | None = None, aliases: dict[str, list[str]] | None = None,
                     suppress: bool = False) -> list[str]:
    """One `--field-name` per field of `config_type` the CLI can express (scalars, booleans, comma lists),
    defaulting to the config's own default; `suppress` leaves ungiven flags out of the namespace instead.
    Returns the field names added."""
    added = []
    for f in fields(config_type):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        default = field_default(f)
        names = [_flag(f.name), *(aliases or {}).get(f.name, [])]
        written = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        shown = "required" if default is MISSING else f"default {written}"
        if f.name in field_comments(config_type):
            shown = f"{field_comments(config_type)[f.name]} ({shown})"
        options = {"dest": f.name, "help": shown.replace("%", "%%"),  # argparse formats help with %
                   "default": argparse.SUPPRESS if suppress or default is MISSING else default}
        if f.type.replace(" | None", "") == "bool":
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **options)
        elif (kind := _parser_for(f.type)) is not None:
            item, container = kind
            parser.add_argument(*names, type=item if container is None else _csv(item, container), **options)
        else:
            continue
        added.append(f.name)
    return added


def config_options(args: argparse.Namespace, config_type, skip: tuple[str, ...] = ()) -> dict:
    """The namespace's values for `config_type`'s fields, as keyword arguments for it."""
    return {f.name: getattr(args, f.name) for f in fields(config_type)
            if f.name not in skip and hasattr(args, f.name)}


def check_known(given: dict, allowed: tuple[str, ...], owner: str) -> None:
    """Raise when flags were given that `owner` does not read."""
    extra = sorted(set(given) - set(allowed))
    if extra:
        raise MechscopeError(f"{owner} takes {', '.join(_flag(n) for n in allowed) or 'no options'}; "
                             f"got {', '.join(_flag(n) for n in extra)}")
