"""ACDC on SmolLM2-135M-Instruct IOI: forward passes against one forward per edge, wall time, kept edges,
faithfulness of the kept circuit, and CPR/CMD of ACDC's scores (each edge's objective increase when visited)
next to EAP and EAP-IG (benchmarks/edge_circuits.py: 32 prompts, logit difference).

ACDC searches on the first `--prompts` prompts; the kept circuit and the MIB curve are measured on the first
`--eval-prompts` (the EAP/EAP-IG prompts) with `--eval-metric`.

    python benchmarks/acdc_smollm2.py [--model smollm2] [--prompts 2] [--tau 0.1] [--taus 0.3,0.05]
                                      [--metric kl_to_clean] [--memory-gb 4] [--eval-prompts 32]
                                      [--eval-metric logit_diff] [--curve] [--progress]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import mechscope
from mechscope import circuits, tasks
from mechscope.circuits.edge_runs import acdc_edges, acdc_sweep_edges
from mechscope.circuits.faithfulness import faithfulness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2", help="smollm2, an organism directory or a HF directory")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--taus", default="", help="more thresholds (comma list): rank edges by acdc_sweep_edges")
    parser.add_argument("--metric", default="kl_to_clean")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="ACDC stacks candidates while a pass fits this")
    parser.add_argument("--eval-prompts", type=int, default=32)
    parser.add_argument("--eval-metric", default="logit_diff")
    parser.add_argument("--curve", action="store_true", help="also measure the faithfulness curve (MIB budgets)")
    parser.add_argument("--progress", action="store_true", help="print the memory estimate before the search")
    args = parser.parse_args()
    model = mechscope.load_model(args.model, device="cpu")
    prompts = tasks.make_task("ioi").batch(model.tokenizer, max(args.prompts, args.eval_prompts))
    search, measured = prompts.select(list(range(args.prompts))), prompts.select(list(range(args.eval_prompts)))
    taus = tuple(float(t) for t in args.taus.split(",") if t.strip())
    config = circuits.EdgeCircuitConfig(method="acdc", tau=args.tau, taus=taus, metric=args.metric,
                                        memory_gb=args.memory_gb)
    graph, scores, kept, info = (acdc_sweep_edges if taus else acdc_edges)(model, search, config,
                                                                          progress=args.progress)
    row = {"prompts": len(search), "positions": search.clean.shape[1], "tau": args.tau, "metric": args.metric,
           "edges_in_graph": graph.n_edges, "kept": int(kept.sum()),
           "forward_passes": info["forward_passes"], "candidate_circuits": info["candidate_circuits"],
           "most_stacked": info["most_stacked"], "memory_gb": args.memory_gb,
           "naive_forward_passes": info["naive_forward_passes"],
           "fewer_passes": round(info["naive_forward_passes"] / info["forward_passes"], 1),
           "skipped_edges": info["skipped_edges"], "edges_visited": info["edges_visited"],
           "blocks_computed": info["blocks_computed"], "acdc_seconds": info["seconds"],
           "threads": torch.get_num_threads(), "objective": info["objective"],
           **{key: info[key] for key in ("sweep", "sweep_forward_passes") if key in info}}
    start = time.perf_counter()
    model_empty_kept = torch.stack([graph.real, torch.zeros_like(kept), kept])
    values = circuits.evaluate_circuits(model, measured, graph, model_empty_kept, metric=args.eval_metric, memory_gb=3)
    row.update(eval_prompts=len(measured), eval_metric=args.eval_metric, model_metric=float(values[0]),
               empty_metric=float(values[1]), kept_metric=float(values[2]),
               kept_faithfulness=float(faithfulness(values[2:], float(values[0]), float(values[1]))[0]))
    if args.curve:
        curve = circuits.faithfulness_curve(model, measured, graph, scores, [*circuits.MIB_FRACTIONS, int(kept.sum())],
                                            metric=args.eval_metric, memory_gb=3)
        row.update(cpr=curve["cpr"], cmd=curve["cmd"],
                   curve=[(p["budget"], p["edges_after_pruning"], round(p["faithfulness"], 4))
                          for p in curve["points"]])
    row["eval_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
