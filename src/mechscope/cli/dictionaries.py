"""CLI verbs for sparse dictionaries: train (one, a sweep of several, or crosscoders), convert."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import csv_list, leaf
from mechscope.cli.config_flags import add_config_flags, check_known, config_options
from mechscope.dictionaries.training import TrainConfig
from mechscope.errors import MechscopeError


def arch_parser() -> argparse.ArgumentParser:
    """The options of one `--arch NAME` group: --width, then every variant's DictionaryConfig fields."""
    from mechscope.dictionaries import DictionaryConfig
    from mechscope.dictionaries.variants import VARIANTS

    group = argparse.ArgumentParser(prog="mechscope train ... --arch", add_help=False)
    group.add_argument("--arch", required=True, choices=sorted(VARIANTS))
    group.add_argument("--width", default="16x", help="latents: 16x (times d_in) or a number")
    every = tuple(dict.fromkeys(name for v in VARIANTS.values() for name in v.hyperparameters))
    add_config_flags(group, DictionaryConfig, only=every, suppress=True)
    return group


def dictionary_configs(extra: list[str], d_in: int, n_sources: int = 1) -> list:
    """Split `--arch A [opts] --arch B [opts]` into one DictionaryConfig per --arch; each group may set only
    its variant's own fields, and what it leaves out takes the config's default (n_sources: the source's)."""
    from mechscope.dictionaries import DictionaryConfig
    from mechscope.dictionaries.variants import variant_type

    if not extra or extra[0] != "--arch":
        raise MechscopeError(f"train needs one or more '--arch NAME [options]' groups; got {extra or 'none'}")
    group = arch_parser()
    starts = [i for i, token in enumerate(extra) if token == "--arch"] + [len(extra)]
    configs = []
    for a, b in zip(starts, starts[1:]):
        opts = group.parse_args(extra[a:b])
        given = config_options(opts, DictionaryConfig)
        check_known(given, variant_type(opts.arch).hyperparameters, f"--arch {opts.arch}")
        if n_sources > 1:
            given.setdefault("n_sources", n_sources)
        width = opts.width.lower()
        d_sae = int(float(width[:-1]) * d_in) if width.endswith("x") else int(width)
        configs.append(DictionaryConfig(d_in=d_in, d_sae=d_sae, architecture=opts.arch, **given))
    return configs


def train(args: argparse.Namespace) -> dict:
    import json as _json

    from mechscope.data.paired import is_pair
    from mechscope.dictionaries import TrainConfig, train
    from mechscope.dictionaries.batches import as_batch_source
    from mechscope.dictionaries.crosscoder import crosscoder_source

    if args.hooks or is_pair(args.cache):  # crosscoders: several hooks of one cache, or one hook of two models
        source = crosscoder_source(args.cache, csv_list(args.hooks or args.hook or ""))
        configs = dictionary_configs(args.extra, source.d_in, len(source.provenance["sources"]))
    else:
        source = as_batch_source(args.cache, args.hook)
        configs = dictionary_configs(args.extra, source.d_in)
    directories = train(source, configs, args.out, TrainConfig(**config_options(args, TrainConfig)), hook=args.hook)
    results = {}
    for directory in directories:
        log = (directory / "training_log.jsonl").read_text().splitlines()
        results[directory.name] = {"dir": str(directory), **(_json.loads(log[-1]) if log else {})}
    return {"dictionaries": results}


def convert(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.formats import convert, detect_format

    source_format = getattr(args, "from") or detect_format(args.input)
    out = convert(args.input, args.output, to=args.to, source_format=source_format)
    return {"from": source_format, "to": args.to, "output": str(out)}


def register(verbs) -> None:
    p = leaf(verbs, "train", train, "train dictionaries (several = a sweep over one pass of the data)",
             description="mechscope train CACHE --out DIR --arch topk --width 16x --k 32 "
                         "[--arch jumprelu --target-l0 32 ...]")
    p.set_defaults(takes_extra=True)
    p.add_argument("cache", help="activation cache directory")
    p.add_argument("--out", required=True)
    p.add_argument("--hook", help="which cached hook (needed when the cache holds several)")
    p.add_argument("--hooks", help="a,b,c: train a cross-layer crosscoder over these hooks of the cache "
                                   "(a paired-harvest CACHE trains a model-diffing crosscoder without it)")
    add_config_flags(p, TrainConfig, aliases={"wandb_project": ["--wandb"]})

    p = leaf(verbs, "convert", convert, "convert a dictionary between file formats")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", default="saelens", choices=["saelens", "sparsify", "gemmascope", "dictionary_learning",
                                                       "openai"])
    p.add_argument("--from", help="source format (detected when omitted)")
