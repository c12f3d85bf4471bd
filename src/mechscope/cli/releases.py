"""CLI verbs for public dictionary releases: dictionaries list, pull, info."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.cli.dictionaries import register_estimate


def list_releases(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.releases import RELEASES

    return {"releases": [f"{r.name} ({r.kind}, {r.format}) {r.model}: {r.hook or 'hook from config'}, widths "
                         f"{'/'.join(r.widths)}, e.g. {r.name}{'/' + r.example if r.example else ''}"
                         for r in RELEASES]}


def pull(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.public import load_release, resolve_release

    if args.model:
        from mechscope.models import load_model

        load_release(args.id, load_model(args.model, device="cpu"), getattr(args, "from"))
    else:
        load_release(args.id, source=getattr(args, "from"))
    return resolve_release(args.id).describe()


def info(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.public import resolve_release

    return resolve_release(args.id).describe()


def register(verbs) -> None:
    group = verbs.add_parser("dictionaries", help="public dictionary releases (Gemma Scope, Llama Scope, sparsify, "
                                                  "OpenAI, SAELens, circuit-tracer)").add_subparsers(
        dest="action", required=True)
    leaf(group, "list", list_releases, "the registered releases")
    p = leaf(group, "pull", pull, "download (or copy --from DIR), convert and cache a public dictionary")
    p.add_argument("id", help="e.g. gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82")
    p.add_argument("--from", help="a local copy of the release's repository, of the dictionary's folder, or its file")
    p.add_argument("--model", help="check the dictionary against this model (hook, width)")
    p = leaf(group, "info", info, "what an id resolves to: repository, files, hook, width, cache")
    p.add_argument("id")
    register_estimate(group)
