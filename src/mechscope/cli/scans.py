"""CLI verb for feature-family scans: scan."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.scans.config import FamilyScanConfig


def scan(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.scans import scan_families

    model = load_model(args.model, device=args.device)
    result = scan_families(model, args.catalog, args.out, FamilyScanConfig(**config_options(args, FamilyScanConfig)))
    return {"directory": result.directory, "hook": result.hook, "dictionary": result.dictionary,
            "families": {f.name: {"probe_auroc": f.probe.auroc, "control_auroc": f.probe.control_auroc,
                                  "matches": [{"latent": m.latent, "label": m.label, "match": m.match,
                                               "auroc": m.auroc} for m in f.matches]}
                         for f in result.families},
            "seconds": result.seconds}


def register(verbs) -> None:
    p = leaf(verbs, "scan", scan, "scan safety-relevant concept families: catalogue labels and linear probes")
    p.add_argument("model", help='"minilm", "smollm2", a .gguf file, a local HF directory or a hub id')
    p.add_argument("--catalog", help="feature catalogue directory to search (default: probe only, needs --hook)")
    p.add_argument("--out", required=True, help="output directory (scan.json, manifest.json)")
    p.add_argument("--device", default="auto")
    add_config_flags(p, FamilyScanConfig)
