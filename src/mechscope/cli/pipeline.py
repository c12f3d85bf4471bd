"""CLI verb for pipelines: `mechscope run CONFIG.toml [--out DIR] [--only STAGE ...] [--force STAGE ...]`."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf


def run_verb(args: argparse.Namespace) -> dict:
    from mechscope.pipeline import load_config, run_pipeline

    config = load_config(args.config)
    out = args.out or (config.settings.name or "mechscope-run")
    result = run_pipeline(config, out, only=args.only or (), force=args.force or ())
    return {"out": str(result.out), "ran": result.ran, "skipped": result.skipped, "seconds": result.seconds,
            "run": str(result.out / "run.json")}


def register(verbs) -> None:
    p = leaf(verbs, "run", run_verb, "run a declarative pipeline (TOML config or a shipped name: demo, "
             "jailbreak-monitor); finished stages whose config is unchanged are skipped, interrupted ones resumed")
    p.add_argument("config", help="a pipeline TOML file or the name of a shipped config")
    p.add_argument("--out", default=None, help="run directory (default: the config's [pipeline] name)")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="run just these stages (their inputs must have run)")
    p.add_argument("--force", nargs="+", metavar="STAGE", help="rerun these stages even when up to date")
