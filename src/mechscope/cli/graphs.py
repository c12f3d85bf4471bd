"""CLI verb for attribution graphs: `mechscope graph MODEL TRANSCODERS "prompt" --out DIR` (per-layer or CLT)."""

from __future__ import annotations

import argparse
import json

from mechscope.circuits.graphs.config import GraphConfig
from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.errors import MechscopeError


def _catalogs(specs: list[str]) -> dict[int, str]:
    catalogs = {}
    for spec in specs:
        layer, sep, path = spec.partition("=")
        if not sep or not layer.isdigit():
            raise MechscopeError(f"--catalog takes LAYER=PATH (e.g. 3=catalogs/layer3), got {spec!r}")
        catalogs[int(layer)] = path
    return catalogs


def graph(args: argparse.Namespace) -> dict:
    from mechscope.circuits.graphs.files import load_transcoder_directory, trace
    from mechscope.features.graph_labels import catalog_labels
    from mechscope.models import load_model

    config = GraphConfig(**config_options(args, GraphConfig))
    model = load_model(args.model, device=args.device)
    transcoders = load_transcoder_directory(args.transcoders, device=str(model.device))
    labels = catalog_labels(_catalogs(args.catalog)) if args.catalog else None
    supernodes = json.loads(args.supernodes) if args.supernodes else None
    return trace(model, transcoders, args.prompt, args.out, config, labels, supernodes, args.slug, args.scan,
                 progress=True)


def register(verbs) -> None:
    p = leaf(verbs, "graph", graph, "attribution graph of a prompt through per-layer or cross-layer transcoders "
             "(circuit tracing): graph files, Neuronpedia JSON and an offline HTML viewer")
    p.add_argument("model", help='"smollm2", an organism directory, a local HF directory or a hub id')
    p.add_argument("transcoders", help="a transcoder set (mechscope's or circuit-tracer's config.yaml), a cross-layer "
                   "transcoder (circuit-tracer's CLT files, as train_clt writes them), or one saved dictionary "
                   "(SAELens layout) per layer subfolder")
    p.add_argument("prompt")
    p.add_argument("--out", required=True, help="directory for graph.safetensors/json, {slug}.json, graph.html")
    p.add_argument("--device", default="auto")
    p.add_argument("--slug", default="attribution-graph", help="the graph's name in its Neuronpedia JSON")
    p.add_argument("--scan", help="Neuronpedia scan id of the transcoder set (default: MODEL-transcoders)")
    p.add_argument("--catalog", action="append", default=[], help="LAYER=PATH of a feature catalogue for labels")
    p.add_argument("--supernodes", help='hand-made groups as JSON: [["name", "node_id", ...], ...]')
    add_config_flags(p, GraphConfig)
