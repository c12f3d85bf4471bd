"""ACDC on SmolLM2-135M-Instruct IOI: forward passes against one forward per edge, wall time, kept edges,
faithfulness, and CPR/CMD of the tau-ranking next to EAP and EAP-IG (benchmarks/edge_circuits.py).

    python benchmarks/acdc_smollm2.py [--model smollm2] [--prompts 8] [--tau 0.1] [--metric kl_to_clean] [--curve]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import torch

import mechscope
from mechscope import circuits, tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2", help="smollm2, an organism directory or a HF directory")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--metric", default="kl_to_clean")
    parser.add_argument("--max-rows", type=int, default=64)
    parser.add_argument("--curve", action="store_true", help="also measure the faithfulness curve (MIB budgets)")
    parser.add_argument("--progress", action="store_true", help="print each destination as ACDC visits it")
    args = parser.parse_args()
    model = mechscope.load_model(args.model, device="cpu")
    batch = tasks.make_task("ioi").batch(model.tokenizer, args.prompts)
    if args.progress:
        acdc_module = importlib.import_module("mechscope.circuits.acdc")  # the package exports the function
        visit, start = acdc_module._visit, time.perf_counter()

        def traced(evaluate, kept, dst, *rest):
            value = visit(evaluate, kept, dst, *rest)
            print(f"{time.perf_counter() - start:7.1f} s {evaluate.graph.destinations[dst]:>14} rows {evaluate.rows} "
                  f"passes {evaluate.passes} objective {value:.4f}", flush=True)
            return value
        acdc_module._visit = traced
    edges = min(200, circuits.EdgeGraph.for_model(model).n_edges)  # the curve's extra budget, as for EAP
    config = circuits.EdgeCircuitConfig(method="acdc", tau=args.tau, metric=args.metric, max_rows=args.max_rows,
                                        edges=edges)
    start = time.perf_counter()
    found = circuits.find_circuit(model, batch, config, curve=args.curve)
    info = found.info
    row = {"prompts": len(batch), "positions": batch.clean.shape[1], "tau": args.tau, "metric": args.metric,
           "edges_in_graph": found.graph.n_edges, "kept": len(found.circuit), "nodes": len(found.nodes()),
           "forward_passes": info["forward_passes"], "candidate_circuits": info["candidate_circuits"],
           "naive_forward_passes": info["naive_forward_passes"], "skipped_edges": info["skipped_edges"],
           "blocks_computed": info["blocks_computed"], "acdc_seconds": info["seconds"],
           "total_seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads(),
           "objective": info["objective"]}
    if args.curve:
        row.update(cpr=found.curve["cpr"], cmd=found.curve["cmd"], faithfulness=info["faithfulness"],
                   curve=[(p["budget"], p["edges_after_pruning"], round(p["faithfulness"], 4))
                          for p in found.curve["points"]])
    print(json.dumps(row))


if __name__ == "__main__":
    main()
