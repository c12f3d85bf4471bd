"""The `mechscope` command: each verb parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from mechscope.errors import MechscopeError

VERBS: dict[str, Callable[[argparse.Namespace], dict]] = {}


def _emit(result: dict, as_json: bool) -> None:
    """Human lines first; with --json the machine-readable result is the last line."""
    if as_json:
        print(json.dumps(result, default=str))
    else:
        for key, value in result.items():
            if isinstance(value, (list, dict)) and len(str(value)) > 100:
                print(f"{key}:")
                for item in (value.items() if isinstance(value, dict) else value):
                    print(f"  {item[0]}: {item[1]}" if isinstance(value, dict) else f"  {item}")
            else:
                print(f"{key}: {value}")


def models_inspect(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    return {**model.info.__dict__,
            "hooks": {name: list(model.hook_shape(name)) for name in model.hook_names()}}


def demo(args: argparse.Namespace) -> dict:
    from mechscope.demo import run_demo

    return run_demo(args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mechscope", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("demo", help="run every capability on the embedded defaults")
    p.add_argument("--out", default="mechscope-demo", help="output directory")
    p.set_defaults(run=demo)

    models = verbs.add_parser("models", help="inspect models").add_subparsers(dest="action", required=True)
    p = models.add_parser("inspect", help="family, sizes and hook points with shapes")
    p.add_argument("model", help='"minilm", a local HF directory or a hub id')
    p.add_argument("--device", default="auto")
    p.set_defaults(run=models_inspect)

    for sub in list(verbs.choices.values()) + list(models.choices.values()):
        sub.add_argument("--json", action="store_true", help="print a JSON result as the last line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except MechscopeError as err:
        print(f"mechscope: error: {err}", file=sys.stderr)
        return 2
    _emit(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
