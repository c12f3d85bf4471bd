"""CLI verbs for features: mine, dashboard, search, export neuronpedia."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.features.config import MiningConfig


def mine(args: argparse.Namespace) -> dict:
    from mechscope.data import text_source
    from mechscope.features import mine
    from mechscope.features.dashboard import write_dashboard
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    source = args.source if Path(args.source).is_dir() else text_source(args.source, column=args.column)
    result = mine(model, args.dictionary, source, args.out, hook=args.hook,
                  **config_options(args, MiningConfig)).to_dict()
    if args.dashboard:
        result["dashboard"] = write_dashboard(args.out).to_dict()
    return result


def dashboard(args: argparse.Namespace) -> dict:
    from mechscope.features.dashboard import write_dashboard

    return write_dashboard(args.dir, args.out, top=args.top, per_bin=args.per_bin).to_dict()


def search(args: argparse.Namespace) -> dict:
    from mechscope.features import Catalog

    with Catalog(args.dir) as catalog:
        hits = catalog.search(args.query, limit=args.limit, raw=args.raw)
        return {"query": args.query, "hits": [
            {"latent": h.latent, "matched": h.matched, "text": h.text, "density": catalog.get(h.latent).density}
            for h in hits]}


def export_neuronpedia(args: argparse.Namespace) -> dict:
    from mechscope.features.neuronpedia import export_neuronpedia

    path = export_neuronpedia(args.dir, args.out, model_id=args.model_id, source_set=args.source_set,
                              creator_id=args.creator_id)
    return {"source": str(path), "files": sorted(str(p.relative_to(path)) for p in path.rglob("*.jsonl.gz"))}


def register(verbs) -> None:
    p = leaf(verbs, "mine", mine, "mine every latent of a dictionary into a feature catalogue")
    p.add_argument("model", help='"minilm", a local HF directory or a hub id')
    p.add_argument("dictionary", help="dictionary directory or file (any supported format)")
    p.add_argument("--source", default="pydocs", help="text source, or an activation-cache directory")
    p.add_argument("--column", default="text", help="text column of a .jsonl/.parquet/hf: source")
    p.add_argument("--out", required=True, help="catalogue directory (catalog.sqlite, examples.parquet)")
    p.add_argument("--hook", help="override the hook recorded in the dictionary")
    p.add_argument("--device", default="auto")
    p.add_argument("--dashboard", action="store_true", help="also write the HTML dashboard")
    add_config_flags(p, MiningConfig)

    p = leaf(verbs, "dashboard", dashboard, "(re)write the offline HTML dashboard of a catalogue")
    p.add_argument("dir")
    p.add_argument("--out", help="default: DIR/dashboard")
    p.add_argument("--top", type=int, default=10, help="top-activation contexts per latent page")
    p.add_argument("--per-bin", type=int, default=1, help="sampled contexts per quantile bin per latent page")

    p = leaf(verbs, "search", search, "full-text search over labels and top tokens")
    p.add_argument("dir")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--raw", action="store_true", help="pass FTS5 query syntax through")

    export = verbs.add_parser("export", help="export to other tools").add_subparsers(dest="action", required=True)
    p = leaf(export, "neuronpedia", export_neuronpedia, "Neuronpedia bulk-import batch JSONL files")
    p.add_argument("dir")
    p.add_argument("out")
    p.add_argument("--model-id", help="Neuronpedia model id (default: the model's name)")
    p.add_argument("--source-set", help="source set name (default: mechscope-<d_sae>)")
    p.add_argument("--creator-id")
