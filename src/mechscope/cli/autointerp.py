"""CLI verb for auto-interpretation: label (explain + score a mined catalogue's latents)."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import csv_list, leaf


def label(args: argparse.Namespace) -> dict:
    from mechscope.autointerp.labelling import LabelConfig, label_features

    cfg = LabelConfig(explainer=args.explainer, scorers=tuple(csv_list(args.scorers)), scorer_model=args.scorer_model,
                      base_url=args.base_url, max_latents=args.max_latents, chain_of_thought=args.chain_of_thought,
                      logprobs=args.logprobs, workers=args.workers, seed=args.seed, cache_dir=args.cache_dir)
    run = label_features(args.dir, cfg).to_dict()
    if args.dashboard:
        from mechscope.features.dashboard import write_dashboard

        run["dashboard"] = write_dashboard(args.dir).path
    return run


def register(verbs) -> None:
    p = leaf(verbs, "label", label, "explain and score the latents of a mined catalogue (offline or with an LLM)")
    p.add_argument("dir", help="a directory written by `mechscope mine`")
    p.add_argument("--explainer", default="offline", help="offline | openai:MODEL | anthropic:MODEL | hf:PATH")
    p.add_argument("--scorers", default="embedding", help="comma list of embedding, detection, fuzzing, simulation")
    p.add_argument("--scorer-model", help="LLM for detection/fuzzing/simulation (default: the explainer's)")
    p.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, llama.cpp) or Anthropic proxy")
    p.add_argument("--max-latents", type=int, help="label the first N latents with examples in every role")
    p.add_argument("--chain-of-thought", action="store_true", help="let the explainer reason before labelling")
    p.add_argument("--logprobs", action="store_true", help="ask scorers for log-probabilities (AUROC)")
    p.add_argument("--workers", type=int, default=8, help="latents explained / scored at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="LLM response cache (default DIR/llm_cache)")
    p.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                   help="do not regenerate DIR's dashboard with the new labels")
