"""CLI verbs for sparse dictionaries: train (one, or a sweep of several), convert."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.errors import MechscopeError


def _dictionary_groups(extra: list[str], d_in: int) -> list:
    """Split `--arch A [opts] --arch B [opts]` into one DictionaryConfig per --arch."""
    from mechscope.dictionaries import DictionaryConfig

    if not extra or extra[0] != "--arch":
        raise MechscopeError(f"train needs one or more '--arch NAME [options]' groups; got {extra or 'none'}")
    group = argparse.ArgumentParser(prog="mechscope train ... --arch", add_help=False)
    group.add_argument("--arch", required=True)
    group.add_argument("--width", default="16x", help="latents: 16x (times d_in) or a number")
    group.add_argument("--k", type=int, default=32)
    group.add_argument("--l1", type=float, default=5.0)
    group.add_argument("--l0-coefficient", type=float, default=1.0)
    group.add_argument("--target-l0", type=float)
    group.add_argument("--relu-form", default="anthropic", choices=["anthropic", "classic"])
    group.add_argument("--matryoshka-widths", help="comma-separated prefix widths")
    starts = [i for i, token in enumerate(extra) if token == "--arch"] + [len(extra)]
    configs = []
    for a, b in zip(starts, starts[1:]):
        opts = group.parse_args(extra[a:b])
        width = opts.width.lower()
        d_sae = int(float(width[:-1]) * d_in) if width.endswith("x") else int(width)
        widths = [int(w) for w in opts.matryoshka_widths.split(",")] if opts.matryoshka_widths else []
        configs.append(DictionaryConfig(
            d_in=d_in, d_sae=d_sae, architecture=opts.arch, k=opts.k, l1_coefficient=opts.l1,
            l0_coefficient=opts.l0_coefficient, target_l0=opts.target_l0, relu_form=opts.relu_form,
            matryoshka_widths=widths))
    return configs


def train(args: argparse.Namespace) -> dict:
    import json as _json

    from mechscope.dictionaries import TrainConfig, train
    from mechscope.dictionaries.batches import as_batch_source

    source = as_batch_source(args.cache, args.hook)
    configs = _dictionary_groups(args.extra, source.d_in)
    tcfg = TrainConfig(tokens=int(float(args.tokens)), batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       device=args.device, checkpoint_every=args.checkpoint_every, wandb_project=args.wandb)
    directories = train(source, configs, args.out, tcfg, hook=args.hook)
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
    p.add_argument("--tokens", default="2e6")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    p.add_argument("--device", default="auto")

    p = leaf(verbs, "convert", convert, "convert a dictionary between file formats")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", default="saelens", choices=["saelens", "sparsify", "gemmascope", "dictionary_learning",
                                                       "openai"])
    p.add_argument("--from", help="source format (detected when omitted)")
