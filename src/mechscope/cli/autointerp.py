"""CLI verb for auto-interpretation: label (explain + score a mined catalogue's latents)."""

from __future__ import annotations

import argparse

from mechscope.autointerp.labelling import LabelConfig
from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options


def label(args: argparse.Namespace) -> dict:
    from mechscope.autointerp.labelling import label_features

    run = label_features(args.dir, LabelConfig(**config_options(args, LabelConfig))).to_dict()
    if args.dashboard:
        from mechscope.features.dashboard import write_dashboard

        run["dashboard"] = write_dashboard(args.dir).path
    return run


def register(verbs) -> None:
    p = leaf(verbs, "label", label, "explain and score the latents of a mined catalogue (offline or with an LLM)")
    p.add_argument("dir", help="a directory written by `mechscope mine`")
    add_config_flags(p, LabelConfig)  # explainer: offline | openai:MODEL | anthropic:MODEL | hf:PATH
    p.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                   help="do not regenerate DIR's dashboard with the new labels")
