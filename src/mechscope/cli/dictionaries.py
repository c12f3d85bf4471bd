"""CLI verbs for sparse dictionaries: train (one, a sweep of several; transcoders per layer or cross-layer;
crosscoders), convert."""

from __future__ import annotations

import argparse
import os
import sys

from pathlib import Path

from mechscope.cli.arguments import csv_list, leaf
from mechscope.cli.config_flags import add_config_flags, check_known, config_options
from mechscope.dictionaries.training import TrainConfig
from mechscope.errors import MechscopeError


TRANSCODER_OPTIONS = ("skip_connection",)  # what any --arch group of a --transcoder run may add


def arch_parser() -> argparse.ArgumentParser:
    """The options of one `--arch NAME` group: --width, then every variant's DictionaryConfig fields."""
    from mechscope.dictionaries import DictionaryConfig
    from mechscope.dictionaries.variants import VARIANTS

    group = argparse.ArgumentParser(prog="mechscope train ... --arch", add_help=False)
    group.add_argument("--arch", required=True, choices=sorted(VARIANTS))
    group.add_argument("--width", default="16x", help="latents: 16x (times d_in) or a number")
    every = tuple(dict.fromkeys(name for v in VARIANTS.values() for name in v.hyperparameters)) + TRANSCODER_OPTIONS
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
        check_known(given, variant_type(opts.arch).hyperparameters + TRANSCODER_OPTIONS, f"--arch {opts.arch}")
        if n_sources > 1:
            given.setdefault("n_sources", n_sources)
        configs.append(DictionaryConfig(d_in=d_in, d_sae=latents(opts.width, d_in), architecture=opts.arch, **given))
    return configs


def latents(width: str, d_in: int) -> int:
    """"16x" -> 16 * d_in; "4096" -> 4096."""
    width = width.lower()
    return int(float(width[:-1]) * d_in) if width.endswith("x") else int(width)


CLT_OPTIONS = ("activation", "k", "sparsity_coefficient", "tanh_scale", "jumprelu_bandwidth", "jumprelu_init_threshold",
               "skip_connection")


def _train_clt(args: argparse.Namespace, tcfg) -> dict:
    """`--arch clt [--width 8x] [--activation jumprelu|topk] ...`: one cross-layer transcoder over --layers."""
    from mechscope.data import ActivationCache
    from mechscope.dictionaries import CLTConfig, estimate_clt_memory, train_clt

    group = argparse.ArgumentParser(prog="mechscope train ... --arch clt", add_help=False)
    group.add_argument("--arch", required=True)
    group.add_argument("--width", default="8x", help="latents per layer: 8x (times d_in) or a number")
    add_config_flags(group, CLTConfig, only=CLT_OPTIONS, suppress=True)
    opts = group.parse_args(args.extra)
    layers = args.layers or []
    if not layers or layers != list(range(layers[0], layers[0] + len(layers))):
        raise MechscopeError(f"--arch clt needs --layers naming consecutive layers (e.g. 0,1,2); got {layers}")
    cache = ActivationCache(args.cache)
    hook_in, hook_out = args.in_hook, args.out_hook
    d_in, d_out = cache.d(hook_in.format(layer=layers[0])), cache.d(hook_out.format(layer=layers[0]))
    cfg = CLTConfig(n_layers=len(layers), d_in=d_in, d_latent=latents(opts.width, d_in), d_out=d_out,
                    hook_in=hook_in, hook_out=hook_out, first_layer=layers[0],
                    model_name=cache.manifest["model"]["name"], **config_options(opts, CLTConfig))
    estimate = estimate_clt_memory(cfg, tcfg.batch_size, tcfg.latent_shards, cache.manifest["dtype"], tcfg.init_tokens)
    print(estimate.table(), file=sys.stderr)
    if args.estimate_memory:
        return {"memory": estimate.to_dict()}
    directory = train_clt(args.cache, cfg, args.out, tcfg)  # a path: latent-shard ranks open the cache themselves
    return {"clt": str(directory), "layers": layers}


def _train_transcoders(args: argparse.Namespace, tcfg) -> dict:
    """`--transcoder`: one transcoder per --layers entry ({layer} in the hooks), or one for the hooks as given;
    with --layers, the per-layer results are also written as a TranscoderSet in OUT/set (one --arch only)."""
    from dataclasses import replace

    from mechscope.data import ActivationCache
    from mechscope.dictionaries import TranscoderSet, train
    from mechscope.dictionaries.formats import load_dictionary

    cache = ActivationCache(args.cache)
    results, trained, memory = {}, [], {}
    for layer in args.layers or [None]:
        hook_in, hook_out = (h.format(layer=layer) for h in (args.in_hook, args.out_hook))
        configs = [replace(cfg, d_out=cache.d(hook_out), hook_name_out=hook_out)
                   for cfg in dictionary_configs(args.extra, cache.d(hook_in))]
        out = Path(args.out) / f"layer_{layer}" if layer is not None else Path(args.out)
        memory[out.name] = _print_estimates(configs, tcfg, cache.manifest["dtype"])
        if args.estimate_memory:
            continue
        # the cache's directory, not an open cache: latent-shard ranks open it themselves
        directories = train(args.cache, configs, out, tcfg, hook=hook_in, hook_out=hook_out)
        trained.append(directories[0])
        results.update({f"{out.name}/{d.name}": str(d) for d in directories})
    if args.estimate_memory:
        return {"memory": memory}
    if args.layers and len(results) == len(args.layers):
        tset = TranscoderSet([load_dictionary(d) for d in trained], list(args.layers))
        results["set"] = str(tset.save(Path(args.out) / "set"))
    return {"transcoders": results}


def train(args: argparse.Namespace) -> dict:
    import json as _json

    from mechscope.data import ActivationCache
    from mechscope.data.paired import is_pair
    from mechscope.dictionaries import TrainConfig, train
    from mechscope.dictionaries.batches import as_batch_source
    from mechscope.dictionaries.crosscoder import crosscoder_source

    tcfg = TrainConfig(**config_options(args, TrainConfig))
    if args.extra[:2] == ["--arch", "clt"]:
        return _train_clt(args, tcfg)
    if args.transcoder or args.out_hook:
        if not (args.in_hook and args.out_hook):
            raise MechscopeError("--transcoder needs --in-hook and --out-hook (e.g. blocks.{layer}.ln2.hook_normalized "
                                 "and blocks.{layer}.hook_mlp_out)")
        return _train_transcoders(args, tcfg)
    if args.hooks or is_pair(args.cache):  # crosscoders: several hooks of one cache, or one hook of two models
        source = crosscoder_source(args.cache, csv_list(args.hooks or args.hook or ""))
        configs = dictionary_configs(args.extra, source.d_in, len(source.provenance["sources"]))
    else:
        source = as_batch_source(args.cache, args.hook)
        configs = dictionary_configs(args.extra, source.d_in)
        memory = _print_estimates(configs, tcfg, ActivationCache(args.cache).manifest["dtype"])
        if args.estimate_memory:
            return {"memory": memory}
        if tcfg.latent_shards > 1:  # spawned ranks open the cache themselves
            source = args.cache
    directories = train(source, configs, args.out, tcfg, hook=args.hook)
    results = {}
    for directory in directories:
        log = (directory / "training_log.jsonl").read_text().splitlines()
        results[directory.name] = {"dir": str(directory), **(_json.loads(log[-1]) if log else {})}
    return {"dictionaries": results}


def _print_estimates(configs: list, tcfg: TrainConfig, cache_dtype: str) -> dict:
    """Each dictionary's memory estimate, printed (to stderr) before training starts."""
    from mechscope.dictionaries.memory import estimate_memory

    replicas = max(1, int(os.environ.get("WORLD_SIZE", tcfg.latent_shards)) // tcfg.latent_shards)
    estimates = {}
    for cfg in configs:
        found = estimate_memory(cfg, tcfg.batch_size, tcfg.latent_shards, replicas, cache_dtype)
        if os.environ.get("RANK", "0") == "0":
            print(found.table(), file=sys.stderr)
        estimates[f"{cfg.architecture}_{cfg.d_sae}"] = found.to_dict()
    return estimates


def estimate(args: argparse.Namespace) -> dict:
    """`mechscope dictionaries estimate`: the memory a training run needs, without data."""
    from mechscope.dictionaries import DictionaryConfig
    from mechscope.dictionaries.memory import estimate_memory

    cfg = DictionaryConfig(**config_options(args, DictionaryConfig))
    found = estimate_memory(cfg, args.batch_size, args.latent_shards, args.replicas, args.cache_dtype)
    print(found.table(), file=sys.stderr)
    return found.to_dict()


def register_estimate(group) -> None:
    """The `dictionaries estimate` verb (its group belongs to the releases module)."""
    from mechscope.dictionaries import DictionaryConfig

    p = leaf(group, "estimate", estimate, "memory a training run needs per rank and in total (any SAE or "
                                          "transcoder variant)")
    add_config_flags(p, DictionaryConfig, only=("d_in", "d_sae", "architecture", "k", "aux_k", "d_out",
                                                "skip_connection"))
    add_config_flags(p, TrainConfig, only=("batch_size", "latent_shards"))
    p.add_argument("--replicas", type=int, default=1, help="data-parallel replicas of each latent shard")
    p.add_argument("--cache-dtype", default="float32", help="dtype of the activation cache (bfloat16 halves it)")


def convert(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.formats import convert, detect_format

    source_format = getattr(args, "from") or detect_format(args.input)
    out = convert(args.input, args.output, to=args.to, source_format=source_format)
    return {"from": source_format, "to": args.to, "output": str(out)}


def register(verbs) -> None:
    p = leaf(verbs, "train", train, "train dictionaries (several = a sweep over one pass of the data)",
             description="mechscope train CACHE --out DIR --arch topk --width 16x --k 32 "
                         "[--arch jumprelu --target-l0 32 ...]; transcoders: --transcoder --in-hook H --out-hook H "
                         "[--layers 0,1,2 with {layer} in the hooks] [--skip-connection in an --arch group]; "
                         "a cross-layer transcoder: --arch clt --layers ...")
    p.set_defaults(takes_extra=True)
    p.add_argument("cache", help="activation cache directory")
    p.add_argument("--out", required=True)
    p.add_argument("--hook", help="which cached hook (needed when the cache holds several)")
    p.add_argument("--transcoder", action="store_true", help="train transcoders from --in-hook to --out-hook")
    p.add_argument("--in-hook", help="transcoder input, e.g. blocks.{layer}.ln2.hook_normalized")
    p.add_argument("--out-hook", help="transcoder target, e.g. blocks.{layer}.hook_mlp_out")
    p.add_argument("--layers", type=lambda text: csv_list(text, int), help="layers for {layer} in the hooks: 0,1,2")
    p.add_argument("--hooks", help="a,b,c: train a cross-layer crosscoder over these hooks of the cache "
                                   "(a paired-harvest CACHE trains a model-diffing crosscoder without it)")
    add_config_flags(p, TrainConfig, aliases={"wandb_project": ["--wandb"]})
    p.add_argument("--estimate-memory", action="store_true", help="print the memory estimate and stop")

    p = leaf(verbs, "convert", convert, "convert a dictionary between file formats")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", default="saelens", choices=["saelens", "sparsify", "gemmascope", "gemmascope2",
                                                       "llama_scope", "dictionary_learning", "openai"])
    p.add_argument("--from", help="source format (detected when omitted)")
