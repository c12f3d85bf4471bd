"""Peak memory and wall time of one stacked patched forward (a faithfulness pass: the model, the empty circuit and
EAP's top-n circuits at MIB budgets) next to `memory_estimate(grad=False)`. Run it once per engine, e.g. with
PYTHONPATH pointing at an older checkout, to compare. Peaks are resident memory (VmHWM, reset through
/proc/self/clear_refs) above what the process held just before: the replacement values and the unpatched forward
of the same rows, then the patched pass.

    python benchmarks/patched_memory.py [--model smollm2] [--prompts 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import mechscope
from mechscope import circuits, tasks
from mechscope.circuits.edge_patching import memory_estimate, run_with_edges, source_values
from mechscope.circuits.edge_runs import task_inputs
from process_memory import reset_peak, status_mib

BUDGETS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = mechscope.load_model(args.model, device="cpu")
    batch = tasks.make_task("ioi").batch(model.tokenizer, args.prompts)
    graph, scores, _ = circuits.attribute_edges(model, batch, "eap")
    chosen = [circuits.select(graph, scores, int(b * graph.n_edges)) for b in BUDGETS]
    masks = (graph.real & ~torch.stack([graph.real, torch.zeros_like(graph.real), *chosen])).float()
    clean_in, corrupt_in = task_inputs(model, batch)
    loaded = reset_peak()
    _, corrupted = source_values(model, graph, corrupt_in)
    with torch.no_grad():
        model({k: v.repeat(len(masks), 1) for k, v in clean_in.items()})  # the unpatched forward of the same rows
    plain = status_mib("VmHWM") - loaded
    before = reset_peak()
    seconds = []
    with torch.no_grad():
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_with_edges(model, graph, clean_in, masks, corrupted)
            seconds.append(time.perf_counter() - start)
    row = {"model": args.model, "prompts": len(batch), "positions": batch.clean.shape[1], "copies": len(masks),
           "circuit_edges": [int(c.sum()) for c in chosen], "seconds_min": round(min(seconds), 3),
           "unpatched_forward_peak_mib": round(plain, 1),
           "patched_peak_mib": round(status_mib("VmHWM") - before, 1), "threads": torch.get_num_threads()}
    every = memory_estimate(model, graph, len(batch), batch.clean.shape[1], grad=False, copies=len(masks))
    row["estimate_every_source_held_mib"] = round(every["source_values_bytes"] / 2**20, 1)
    try:
        from mechscope.circuits.edge_differences import held_counts
    except ImportError:  # an engine without the memory mode
        held_counts = None
    if held_counts is not None:
        held = held_counts(graph, masks)
        estimate = memory_estimate(model, graph, len(batch), batch.clean.shape[1], grad=False, copies=len(masks),
                                   held=held)
        row.update(held_sources=held, every_source=len(masks) * graph.n_sources,
                   estimate_source_values_mib=round(estimate["source_values_bytes"] / 2**20, 1),
                   estimate_total_mib=round(estimate["total_bytes"] / 2**20, 1))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
