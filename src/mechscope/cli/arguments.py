"""Argument helpers shared by the CLI verb modules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def bound_dictionary(args: argparse.Namespace) -> Iterator[tuple]:
    """(model, its --dictionary bound at the hook it records, the --catalog or None) from args.model, args.device,
    args.dictionary and args.catalog; the catalogue is closed afterwards."""
    from mechscope.dictionaries.binding import bind_dictionary
    from mechscope.features import Catalog
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    bound = bind_dictionary(model, args.dictionary)
    catalog = Catalog(args.catalog) if args.catalog else None
    try:
        yield model, bound, catalog
    finally:
        if catalog is not None:
            catalog.close()


def write_json(path: str | Path, data: dict) -> None:
    """`data` as indented JSON at `path`, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2))
