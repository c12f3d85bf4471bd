"""The `mechscope` command: each verb parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
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


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise MechscopeError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from err
    return i, n


def harvest(args: argparse.Namespace) -> dict:
    from mechscope.data import ActivationCache, harvest, text_source
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    out = harvest(model, text_source(args.source, column=args.column), args.hook, tokens=int(float(args.tokens)), out=args.out,
                  context=args.context, batch_size=args.batch_size, dtype=args.dtype, seed=args.seed,
                  exclude_special=not args.keep_special, shard=_shard(args.shard))
    return ActivationCache(out).info()


def cache_info(args: argparse.Namespace) -> dict:
    from mechscope.data import ActivationCache

    cache = ActivationCache(args.dir)
    if args.verify:
        cache.verify()
    return {**cache.info(), **({"verified": True} if args.verify else {})}


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


def eval_dictionary(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.evaluation import evaluate
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    result = evaluate(model, args.dictionary, text_source(args.source, column=args.column),
                      tokens=int(float(args.tokens)), context=args.context, batch_size=args.batch_size,
                      hook=args.hook)
    return result.to_dict()


def _csv(text: str, kind=str) -> list:
    return [kind(v) for v in text.split(",") if v]


def sweep(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.dictionaries import TrainConfig
    from mechscope.evaluation.sweep import sweep
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    tcfg = TrainConfig(tokens=int(float(args.tokens)), batch_size=args.batch_size, device=args.device)
    rows = sweep(args.cache, model, args.out, _csv(args.archs), _csv(args.l0, int), _csv(args.l1, float),
                 expansion=args.expansion, train_config=tcfg, source=text_source(args.source),
                 eval_tokens=int(float(args.eval_tokens)), hook=args.hook)
    keys = ("architecture", "l0", "fvu", "dead_fraction")
    return {"dictionaries": {r["name"]: {k: r[k] for k in keys} | r["downstream"] for r in rows},
            "summary": str(Path(args.out) / "sweep.json")}


def plot_pareto(args: argparse.Namespace) -> dict:
    from mechscope.evaluation.pareto import pareto

    return pareto(args.dir)


def bench_ground_truth(args: argparse.Namespace) -> dict:
    from mechscope.data.atomic import atomic_write_json
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.evaluation.ground_truth import ground_truth_benchmark, markdown_table
    from mechscope.toy import AbsorptionFeatures, SyntheticFeatures, absorption_scores

    out = Path(args.out)
    data = SyntheticFeatures(n_features=args.features, d=args.d, active=5, seed=args.seed)
    rows = ground_truth_benchmark(out / "variants", data, steps=args.steps, batch_size=args.batch_size)
    toy = AbsorptionFeatures(seed=args.seed)
    configs = [DictionaryConfig(toy.d, toy.n_features, "topk", k=2),
               DictionaryConfig(toy.d, toy.n_features, "matryoshka", k=2, matryoshka_widths=[1, toy.n_features])]
    dirs = train(toy, configs, out / "absorption", TrainConfig(tokens=2000 * 512, batch_size=512, log_every=500))
    absorption = {d.name: absorption_scores(load_dictionary(d), toy) for d in dirs}
    table = markdown_table(rows)
    (out / "ground_truth.md").write_text(table + "\n")
    atomic_write_json(out / "ground_truth.json", {"variants": rows, "absorption": absorption})
    print(table)
    return {"variants": {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in rows},
            "absorption": absorption, "table": str(out / "ground_truth.md")}


def toy_superposition(args: argparse.Namespace) -> dict:
    from mechscope.toy import (ToyConfig, dimensions_per_feature, feature_norms, plot_superposition,
                               train_toy)

    probabilities = _csv(args.probabilities, float)
    model = train_toy(ToyConfig(args.n, args.m, probabilities, importance_decay=args.importance_decay,
                                steps=args.steps))
    path = plot_superposition(model, Path(args.out) / f"superposition_{args.n}_in_{args.m}.png")
    norms, d_star = feature_norms(model), dimensions_per_feature(model)
    return {"plot": str(path), "instances": [
        {"feature_probability": p, "represented": int((norms[i] > 0.5).sum()), "d_star": float(d_star[i])}
        for i, p in enumerate(probabilities)]}


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

    p = verbs.add_parser("harvest", help="harvest activations into an on-disk cache")
    p.add_argument("model", help='"minilm", a local HF directory or a hub id')
    p.add_argument("--source", default="pydocs", help="pydocs, a .txt file/folder, .jsonl, .parquet or hf:NAME")
    p.add_argument("--column", default="text", help="text column of a .jsonl/.parquet/hf: source")
    p.add_argument("--hook", action="append", required=True, help="hook name (repeat for several)")
    p.add_argument("--tokens", default="1e6", help="number of token positions to cache (1e6 style accepted)")
    p.add_argument("--out", required=True, help="cache directory (resumes if it holds a matching cache)")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-special", action="store_true", help="also cache BOS/CLS/SEP/PAD positions")
    p.add_argument("--shard", help="i/n: harvest the i-th of n disjoint slices of the token stream")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=harvest)

    p = verbs.add_parser("train", help="train dictionaries (several = a sweep over one pass of the data)",
                         description="mechscope train CACHE --out DIR --arch topk --width 16x --k 32 "
                                     "[--arch jumprelu --target-l0 32 ...]")
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
    p.set_defaults(run=train, takes_extra=True)

    p = verbs.add_parser("eval", help="reconstruction and downstream (CE/KL or embedding) metrics of a dictionary")
    p.add_argument("model")
    p.add_argument("dictionary", help="dictionary directory or file (any supported format)")
    p.add_argument("--source", default="pydocs")
    p.add_argument("--column", default="text")
    p.add_argument("--tokens", default="2e4")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hook", help="override the hook recorded in the dictionary")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=eval_dictionary)

    p = verbs.add_parser("sweep", help="train a grid of variants x sparsities from one pass, evaluate each")
    p.add_argument("cache")
    p.add_argument("--model", required=True, help="the model the cache came from (for CE/KL or embeddings)")
    p.add_argument("--out", required=True)
    p.add_argument("--archs", default="topk,batchtopk,jumprelu,matryoshka")
    p.add_argument("--l0", default="16,32,64", help="k for the TopK family, target L0 for JumpReLU")
    p.add_argument("--l1", default="1,3", help="L1 coefficients for relu and gated")
    p.add_argument("--expansion", type=float, default=8.0)
    p.add_argument("--tokens", default="2e6")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--eval-tokens", default="2e4")
    p.add_argument("--source", default="pydocs", help="held-out text for evaluation")
    p.add_argument("--hook")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=sweep)

    bench = verbs.add_parser("bench", help="built-in benchmarks").add_subparsers(dest="action", required=True)
    p = bench.add_parser("ground-truth", help="every variant on synthetic known features, plus the absorption toy")
    p.add_argument("--out", default="ground-truth")
    p.add_argument("--features", type=int, default=512)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=bench_ground_truth)

    toy = verbs.add_parser("toy", help="toy models").add_subparsers(dest="action", required=True)
    p = toy.add_parser("superposition", help="Elhage et al. 2022 toy models; writes the paper's plots")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--m", type=int, default=5)
    p.add_argument("--probabilities", default="1,0.1,0.03", help="feature probability per instance (1 - S)")
    p.add_argument("--importance-decay", type=float, default=0.7)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--out", default="toy-models")
    p.set_defaults(run=toy_superposition)

    plot = verbs.add_parser("plot", help="plots").add_subparsers(dest="action", required=True)
    p = plot.add_parser("pareto", help="L0 vs FVU and vs CE score per variant (PNG + interactive HTML)")
    p.add_argument("dir")
    p.set_defaults(run=plot_pareto)

    p = verbs.add_parser("convert", help="convert a dictionary between file formats")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", default="saelens", choices=["saelens", "sparsify", "gemmascope", "dictionary_learning",
                                                       "openai"])
    p.add_argument("--from", help="source format (detected when omitted)")
    p.set_defaults(run=convert)

    cache = verbs.add_parser("cache", help="activation caches").add_subparsers(dest="action", required=True)
    p = cache.add_parser("info", help="what a cache holds")
    p.add_argument("dir")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum")
    p.set_defaults(run=cache_info)

    nested = [*models.choices.values(), *cache.choices.values(), *plot.choices.values(), *bench.choices.values(),
              *toy.choices.values()]
    for sub in list(verbs.choices.values()) + nested:
        sub.add_argument("--json", action="store_true", help="print a JSON result as the last line")
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


if __name__ == "__main__":
    sys.exit(main())
