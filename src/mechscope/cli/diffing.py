"""CLI verbs for model diffing: harvest-pair, crosscoder-latents, diff, universal."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.data.harvester import HarvestConfig
from mechscope.diffing.report import DiffConfig
from mechscope.diffing.universal import UniversalConfig

MODEL_HELP = '"smollm2", an organism directory, a local HF directory or a hub id'
SOURCE_HELP = "pydocs, sotu, a mix (pydocs+sotu), a .txt file/folder, .jsonl, .parquet or hf:NAME"


def harvest_pair(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.data.paired import PairedActivations, harvest_pair
    from mechscope.models import load_model

    model_a, model_b = (load_model(m, device=args.device) for m in (args.model_a, args.model_b))
    options = config_options(args, HarvestConfig, skip=("hooks", "shard"))
    out = harvest_pair(model_a, model_b, text_source(args.source, column=args.column), args.hook, out=args.out,
                       **options)
    pair = PairedActivations(out)
    return {"dir": str(out), "models": list(pair.models), "hooks": pair.hooks, "tokens": len(pair)}


def crosscoder_latents(args: argparse.Namespace) -> dict:
    from mechscope.data.paired import PairedActivations
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.diffing import classify_latents, latent_scaling, plot_crosscoder_latents

    d = load_dictionary(args.crosscoder)
    classes = classify_latents(d)
    result = {"summary": classes.summary()}
    scaling = None
    if args.pair:
        pair = PairedActivations(args.pair)
        n = min(len(pair), args.tokens)
        hook = d.cfg.hook_name or pair.hooks[0]
        scaling = latent_scaling(d, (pair.get(hook, range(s, min(s + 4096, n))) for s in range(0, n, 4096)))
        result["truly_specific"] = {name: int(scaling.truly_specific()[classes.indices(name)].sum())
                                    for name in ("a_only", "b_only")}
    if args.plot:
        result["figure"] = str(plot_crosscoder_latents(classes, scaling, args.plot))
    return result


def diff(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.data.paired import PairedActivations
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.diffing.report import diff_models
    from mechscope.models import load_model

    cfg = DiffConfig(**config_options(args, DiffConfig))
    model_a, model_b = (load_model(m, device=args.device) for m in (args.model_a, args.model_b))
    texts = [t for _, t in zip(range(cfg.texts), text_source(args.source, column=args.column))]
    crosscoder = load_dictionary(args.crosscoder) if args.crosscoder else None
    pair = PairedActivations(args.pair) if args.pair else None
    report = diff_models(model_a, model_b, texts, args.out, cfg, crosscoder, pair)
    lens = report["activation_difference"]
    return {"report": f"{args.out}/report.md", "hook": report["hook"], "mean_kl": report["kl"]["mean"],
            "promoted": [t for t, _ in lens["promoted"][:10]], "suppressed": [t for t, _ in lens["suppressed"][:10]],
            **({"latents": report["crosscoder"]["summary"]} if "crosscoder" in report else {})}


def universal(args: argparse.Namespace) -> dict:
    from mechscope.data import ActivationCache
    from mechscope.data.paired import PairedActivations, is_pair
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.diffing.universal import match_features

    cfg = UniversalConfig(**config_options(args, UniversalConfig))
    dict_a, dict_b = load_dictionary(args.dict_a), load_dictionary(args.dict_b)
    if is_pair(args.source):
        pair = PairedActivations(args.source)
        caches = (pair.a, pair.b)
    else:
        caches = (ActivationCache(args.source),) * 2
    rows = range(min(len(caches[0]), cfg.tokens))
    acts = [cache.get(d.cfg.hook_name or cache.hooks[0], rows) for cache, d in zip(caches, (dict_a, dict_b))]
    return match_features(dict_a, dict_b, acts[0], acts[1], cfg).summary()


def register(verbs) -> None:
    p = leaf(verbs, "harvest-pair", harvest_pair, "harvest one hook of two models on the same tokens (a paired cache)")
    p.add_argument("model_a", help=MODEL_HELP)
    p.add_argument("model_b", help=MODEL_HELP + " (must share model A's tokenizer)")
    p.add_argument("--hook", action="append", required=True, help="hook name (repeat for several)")
    p.add_argument("--out", required=True, help="pair directory (a/ and b/ caches; resumes)")
    p.add_argument("--source", default="pydocs", help=SOURCE_HELP)
    p.add_argument("--column", default="text", help="text column of a .jsonl/.parquet/hf: source")
    add_config_flags(p, HarvestConfig, skip=("hooks", "shard"))
    p.add_argument("--device", default="auto")

    p = leaf(verbs, "crosscoder-latents", crosscoder_latents,
             "classify a two-source crosscoder's latents (shared / A-only / B-only) and run Latent Scaling")
    p.add_argument("crosscoder", help="crosscoder directory (SAELens layout or dictionary_learning)")
    p.add_argument("--pair", help="the paired harvest it was trained on (enables Latent Scaling)")
    p.add_argument("--tokens", type=int, default=20_000, help="paired tokens read for Latent Scaling")
    p.add_argument("--plot", help="write the three figures to this PNG")

    p = leaf(verbs, "diff", diff, "what changed between two models: lens, per-token KL and crosscoder latents")
    p.add_argument("model_a", help=MODEL_HELP)
    p.add_argument("model_b", help=MODEL_HELP)
    p.add_argument("--out", required=True, help="report directory (report.md, report.json, latents.png)")
    p.add_argument("--source", default="pydocs", help=SOURCE_HELP)
    p.add_argument("--column", default="text", help="text column of a .jsonl/.parquet/hf: source")
    p.add_argument("--crosscoder", help="a two-source crosscoder of the pair (adds the latent sections)")
    p.add_argument("--pair", help="the paired harvest the crosscoder was trained on")
    add_config_flags(p, DiffConfig)
    p.add_argument("--device", default="auto")

    p = leaf(verbs, "universal", universal, "match two dictionaries' latents by activation correlation")
    p.add_argument("dict_a")
    p.add_argument("dict_b")
    p.add_argument("--source", required=True, help="a paired harvest (dictionaries of two models) or one cache")
    add_config_flags(p, UniversalConfig)
