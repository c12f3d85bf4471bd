"""CLI verbs for evaluation: eval, sweep, plot pareto, bench ground-truth, toy superposition."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.arguments import csv_list, leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.dictionaries.training import TrainConfig
from mechscope.evaluation.evaluate import EvalConfig


def eval_dictionary(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.evaluation import evaluate
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    source, cfg = text_source(args.source, column=args.column), EvalConfig(**config_options(args, EvalConfig))
    from mechscope.dictionaries.transcoders import holds_transcoders

    if holds_transcoders(args.dictionary):
        from mechscope.evaluation import evaluate_transcoders

        return evaluate_transcoders(model, args.dictionary, source, cfg).to_dict()
    result = evaluate(model, args.dictionary, source, cfg, hook=args.hook)
    return result.to_dict()


def sweep(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.evaluation.sweep import sweep
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    tcfg = TrainConfig(**config_options(args, TrainConfig))
    rows = sweep(args.cache, model, args.out, csv_list(args.archs), csv_list(args.l0, int), csv_list(args.l1, float),
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
    from mechscope.synthetic import AbsorptionFeatures, SyntheticFeatures, absorption_scores

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

    probabilities = csv_list(args.probabilities, float)
    model = train_toy(ToyConfig(args.n, args.m, probabilities, importance_decay=args.importance_decay,
                                steps=args.steps))
    path = plot_superposition(model, Path(args.out) / f"superposition_{args.n}_in_{args.m}.png")
    norms, d_star = feature_norms(model), dimensions_per_feature(model)
    return {"plot": str(path), "instances": [
        {"feature_probability": p, "represented": int((norms[i] > 0.5).sum()), "d_star": float(d_star[i])}
        for i, p in enumerate(probabilities)]}


def register(verbs) -> None:
    p = leaf(verbs, "eval", eval_dictionary, "reconstruction and downstream (CE/KL or embedding) metrics")
    p.add_argument("model")
    p.add_argument("dictionary", help="dictionary directory or file (any supported format), a transcoder set or a CLT")
    p.add_argument("--source", default="pydocs")
    p.add_argument("--column", default="text")
    add_config_flags(p, EvalConfig)
    p.add_argument("--hook", help="override the hook recorded in the dictionary")
    p.add_argument("--device", default="auto")

    p = leaf(verbs, "sweep", sweep, "train a grid of variants x sparsities from one pass, evaluate each")
    p.add_argument("cache")
    p.add_argument("--model", required=True, help="the model the cache came from (for CE/KL or embeddings)")
    p.add_argument("--out", required=True)
    p.add_argument("--archs", default="topk,batchtopk,jumprelu,matryoshka")
    p.add_argument("--l0", default="16,32,64", help="k for the TopK family, target L0 for JumpReLU")
    p.add_argument("--l1", default="1,3", help="L1 coefficients for relu and gated")
    p.add_argument("--expansion", type=float, default=8.0)
    p.add_argument("--eval-tokens", default="2e4")
    p.add_argument("--source", default="pydocs", help="held-out text for evaluation")
    p.add_argument("--hook")
    add_config_flags(p, TrainConfig, aliases={"wandb_project": ["--wandb"]})

    plot = verbs.add_parser("plot", help="plots").add_subparsers(dest="action", required=True)
    leaf(plot, "pareto", plot_pareto, "L0 vs FVU and vs CE score per variant (PNG + interactive HTML)").add_argument(
        "dir")

    bench = verbs.add_parser("bench", help="built-in benchmarks").add_subparsers(dest="action", required=True)
    p = leaf(bench, "ground-truth", bench_ground_truth, "every variant on known features, plus the absorption toy")
    p.add_argument("--out", default="ground-truth")
    p.add_argument("--features", type=int, default=512)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)

    toy = verbs.add_parser("toy", help="toy models").add_subparsers(dest="action", required=True)
    p = leaf(toy, "superposition", toy_superposition, "Elhage et al. 2022 toy models; writes the paper's plots")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--m", type=int, default=5)
    p.add_argument("--probabilities", default="1,0.1,0.03", help="feature probability per instance (1 - S)")
    p.add_argument("--importance-decay", type=float, default=0.7)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--out", default="toy-models")
