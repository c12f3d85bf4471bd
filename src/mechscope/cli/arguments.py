"""Argument helpers shared by the CLI verb modules."""

from __future__ import annotations

import argparse

from mechscope.errors import MechscopeError


def leaf(group, name: str, run, help: str, **kwargs) -> argparse.ArgumentParser:
    """A verb that runs `run(args)`; every verb takes --json."""
    parser = group.add_parser(name, help=help, **kwargs)
    parser.add_argument("--json", action="store_true", help="print a JSON result as the last line")
    parser.set_defaults(run=run)
    return parser


def csv_list(text: str, kind=str) -> list:
    """"16,32,64" -> [16, 32, 64]."""
    return [kind(v) for v in text.split(",") if v]


def shard_spec(text: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n)."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise MechscopeError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from err
    return i, n
