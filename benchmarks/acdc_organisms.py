"""ACDC's forward passes against one forward per edge on the IOI and induction organisms (110 edges each): passes,
candidate circuits (rows), the most stacked in one pass, wall time, and a hash of the kept edges (equal hashes:
the same circuit, e.g. before and after a change to the batching).

    python benchmarks/acdc_organisms.py [--prompts 32] [--taus 0.001,0.03,0.1] [--memory-gb 4] [--max-copies 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json

import torch

from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_runs import acdc_edges
from mechscope.tasks import make_task
from mechscope.toy import load_organism


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--organisms", default="ioi,induction")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--taus", default="0.001,0.03,0.1")
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--max-rows", type=int, default=64)
    args = parser.parse_args()
    for name in args.organisms.split(","):
        model = load_organism(name, "small", device="cpu").model
        batch = make_task(name).batch(model.tokenizer, n=args.prompts)
        for tau in [float(t) for t in args.taus.split(",")]:
            config = EdgeCircuitConfig(task=name, method="acdc", tau=tau, metric="kl_to_clean",
                                       memory_gb=args.memory_gb, max_rows=args.max_rows)
            graph, _, kept, info = acdc_edges(model, batch, config)
            edges = sorted(graph.edges_in(kept))
            print(json.dumps({"organism": name, "prompts": len(batch), "tau": tau, "kept": len(edges),
                              "kept_hash": hashlib.sha256("\n".join(edges).encode()).hexdigest()[:12],
                              "forward_passes": info["forward_passes"], "rows": info["candidate_circuits"],
                              "most_stacked": info.get("most_stacked"), "naive": info["naive_forward_passes"],
                              "fewer_passes": round(info["naive_forward_passes"] / info["forward_passes"], 1),
                              "seconds": info["seconds"], "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
