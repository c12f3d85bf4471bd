"""CLI verb `mechscope serve`: the OpenAI-compatible steering API and feature endpoints over one model."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields

from mechscope.cli.arguments import leaf
from mechscope.server.config import ServerConfig

TOKEN_VARIABLE = "MECHSCOPE_API_TOKEN"


def serve_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.server import (Resources, load_circuits, load_dictionaries, load_graphs, load_variants,
                                  load_vectors, serve)

    limits = {f.name: getattr(args, f.name) for f in fields(ServerConfig) if f.name.startswith(("max_", "default_"))}
    config = ServerConfig(host=args.host, port=args.port, token=args.token or os.environ.get(TOKEN_VARIABLE),
                          **limits)
    model = load_model(args.model, device=args.device)
    resources = Resources(model, args.name or args.model,
                          vectors=load_vectors(args.vectors) if args.vectors else {},
                          dictionaries=load_dictionaries(model, args.dictionary or []),
                          catalog=args.catalog, variants=load_variants(args.variants) if args.variants else {},
                          graphs=load_graphs(args.graphs) if args.graphs else {},
                          circuits=load_circuits(args.circuits) if args.circuits else {})
    serve(resources, config)
    return {"served": resources.model_id}


def register(verbs) -> None:
    p = leaf(verbs, "serve", serve_verb, "serve a model over an OpenAI-compatible API with steering, monitors, "
             "feature endpoints and a web app at / (loopback by default)")
    p.add_argument("model", help="a model name (smollm2, minilm, an HF id or directory, a .gguf file)")
    p.add_argument("--catalog", help="a feature catalogue directory (from `mechscope features mine`)")
    p.add_argument("--dictionary", action="append", help="[NAME=]PATH of a dictionary whose latents requests may "
                   "steer and monitor (repeat for several)")
    p.add_argument("--vectors", help="a directory of saved steering vectors (folders or .gguf control vectors)")
    p.add_argument("--variants", help="a JSON file {name: [steering edits]}: server-side variants selected by `model`")
    p.add_argument("--graphs", help="a directory of attribution graphs from `mechscope graph --out` (or one of them)")
    p.add_argument("--circuits", help="a directory of saved circuit results (result.json + heatmap.html from "
                   "`mechscope patch --out` and the other circuits verbs), shown as heatmaps in the web app")
    p.add_argument("--name", help="the model id clients use (default: the model argument)")
    p.add_argument("--host", default=ServerConfig.host)
    p.add_argument("--port", type=int, default=ServerConfig.port)
    p.add_argument("--token", help=f"bearer token clients must send (or set {TOKEN_VARIABLE}); required for a "
                   "non-loopback --host")
    for f in fields(ServerConfig):
        if f.name.startswith(("max_", "default_")):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default)
    p.add_argument("--device", default="auto")
