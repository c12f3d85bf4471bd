"""Edge-level circuits on IOI: EAP and EAP-IG scores, the faithfulness curve over MIB's budgets, CPR and CMD.

Run: python benchmarks/edge_circuits.py [--model smollm2] [--prompts 32] [--methods eap,eap-ig] [--steps 5]
     [--source-chunk N] [--no-curve]
Each method runs in its own process so its peak resident memory (above the loaded model) can be set beside
`memory_estimate`. Prints one JSON line per method and a Markdown table; recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_method(args: argparse.Namespace) -> dict:
    import mechscope
    from mechscope import circuits, tasks

    model = mechscope.load_model(args.model, device=args.device)
    batch = tasks.make_task("ioi").batch(model.tokenizer, args.prompts)
    with torch.no_grad():
        model(batch.clean[:2], attention_mask=batch.attention_mask[:2])  # warm-up: allocations of any forward
    before = peak_mib()
    graph, scores, info = circuits.attribute_edges(model, batch, args.method, steps=args.steps,
                                                   memory_gb=args.memory_gb, source_chunk=args.source_chunk)
    if args.no_curve:
        return {"method": args.method, "prompts": len(batch), "source_chunk": args.source_chunk,
                "forward_passes": info["forward_passes"], "backward_passes": info["backward_passes"],
                "attribution_seconds": info["seconds"], "estimate_gib": info["memory_estimate"]["total_gib"],
                "peak_above_model_gib": round((peak_mib() - before) / 1024, 3), "threads": torch.get_num_threads()}
    attribution_peak = peak_mib() - before
    start = time.perf_counter()
    curve = circuits.faithfulness_curve(model, batch, graph, scores, [*circuits.MIB_FRACTIONS, args.edges],
                                        max_rows=args.max_rows, memory_gb=args.memory_gb)
    return {"method": args.method, "model": args.model, "prompts": len(batch), "positions": batch.clean.shape[1],
            "edges_in_graph": graph.n_edges, "forward_passes": info["forward_passes"],
            "backward_passes": info["backward_passes"], "attribution_seconds": info["seconds"],
            "curve_seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads(),
            "estimate_gib": info["memory_estimate"]["total_gib"], "peak_above_model_gib": round(attribution_peak / 1024, 3),
            "clean_metric": info["clean_metric"], "corrupted_metric": info["corrupted_metric"],
            "cpr": curve["cpr"], "cmd": curve["cmd"], "faithfulness_at_edges": curve["points"][-1]["faithfulness"],
            "edges": args.edges, "curve": [(p["budget"], p["edges_after_pruning"], round(p["faithfulness"], 4))
                                           for p in curve["points"]]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--methods", default="eap,eap-ig")
    parser.add_argument("--method", help=argparse.SUPPRESS)  # one method in this process
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--edges", type=int, default=200)
    parser.add_argument("--max-rows", type=int, default=64)
    parser.add_argument("--memory-gb", type=float, default=8.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--source-chunk", type=int, default=0, help="memory mode: sources held at once (0: all)")
    parser.add_argument("--no-curve", action="store_true", help="attribution only: passes, seconds and peak memory")
    args = parser.parse_args()
    if args.method:
        print(json.dumps(one_method(args)))
        return
    rows = []
    if args.no_curve:
        for method in args.methods.split(","):
            argv = [a for a in sys.argv[1:]] + ["--method", method]
            done = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)
        return
    for method in args.methods.split(","):
        argv = [a for a in sys.argv[1:]] + ["--method", method]
        done = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| method | passes (fwd/bwd) | attribution s | curve s | CPR | CMD | f at "
          f"{args.edges} edges | peak GiB (estimate) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['forward_passes']}/{r['backward_passes']} | {r['attribution_seconds']} | "
              f"{r['curve_seconds']} | {r['cpr']:.3f} | {r['cmd']:.3f} | {r['faithfulness_at_edges']:.3f} | "
              f"{r['peak_above_model_gib']} ({r['estimate_gib']}) |")


if __name__ == "__main__":
    main()
