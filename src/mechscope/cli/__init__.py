"""The `mechscope` command: each verb parses its arguments and calls one library function.

Verbs live in modules named after the stage they serve; each module's `register` adds its parsers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from mechscope.cli import (activations, autointerp, circuits, dictionaries, diffing, evaluation, features, graphs,
                           kernels, monitors, pipeline, releases, report, scans, server, steering, zoo)
from mechscope.errors import MechscopeError


def _emit(result: dict, as_json: bool) -> None:
    """Human lines first; with --json the machine-readable result is the last line."""
    if as_json:
        print(json.dumps(result, default=str))
        return
    for key, value in result.items():
        if isinstance(value, (list, dict)) and len(str(value)) > 100:
            print(f"{key}:")
            for item in (value.items() if isinstance(value, dict) else value):
                print(f"  {item[0]}: {item[1]}" if isinstance(value, dict) else f"  {item}")
        else:
            print(f"{key}: {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mechscope", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    for module in (activations, autointerp, circuits, dictionaries, diffing, evaluation, features, graphs, kernels,
                   monitors, pipeline, releases, report, scans, server, steering, zoo):
        module.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        result = args.run(args)
    except MechscopeError as err:
        print(f"mechscope: error: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        _emit(result, getattr(args, "json", False))
    return 0
