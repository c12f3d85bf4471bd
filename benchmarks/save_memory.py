"""Each rank's memory at the end of a latent-sharded TopK run (gather on rank 0, save) against the estimate.

Trains a few steps on synthetic activations with `--shards` gloo ranks. Each rank records VmHWM at the end of
training, then resets it (/proc/self/clear_refs) and records the RSS when the gather starts and the peak of the
gather and save; the estimate's `training` and `saving` rows are printed beside them. Run under the heavy lock:
    PYTHONPATH=src python benchmarks/save_memory.py --d-sae 262144
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mechscope.dictionaries import DictionaryConfig, TrainConfig, estimate_memory, train
from mechscope.dictionaries.latent_shards import ShardLayout, spawn
from mechscope.synthetic import SyntheticFeatures
from process_memory import GIB_IN_MIB, reset_peak, status_mib

GIB = 2**30


def _status_gib(field: str) -> float:
    return status_mib(field) / GIB_IN_MIB


def _rank(source, cfg: DictionaryConfig, out: str, tcfg: TrainConfig) -> None:
    import torch.distributed as dist

    marks = {"runtime": _status_gib("VmRSS")}
    gather = ShardLayout.gather

    def measured_gather(layout, part):
        marks["training_peak"] = _status_gib("VmHWM")
        marks["rss_at_gather"] = reset_peak() / GIB_IN_MIB  # VmHWM restarts from here
        return gather(layout, part)

    ShardLayout.gather = measured_gather
    train(source, cfg, out, tcfg)
    marks["saving_peak"] = _status_gib("VmHWM")
    Path(out, f"memory-rank{dist.get_rank()}.json").write_text(json.dumps(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-in", type=int, default=576)
    parser.add_argument("--d-sae", type=int, default=262_144)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    cfg = DictionaryConfig(args.d_in, args.d_sae, "topk", k=args.k)
    tcfg = TrainConfig(tokens=args.steps * args.batch_size, batch_size=args.batch_size, lr=1e-3, lr_warmup_steps=1,
                       latent_shards=args.shards, device="cpu", log_every=2, checkpoint_every=10**9, init_tokens=4096)
    estimate = estimate_memory(cfg, args.batch_size, args.shards)
    print(estimate.table())
    with tempfile.TemporaryDirectory() as out:
        spawn(args.shards, _rank, (SyntheticFeatures(4096, args.d_in, seed=0), cfg, out, tcfg))
        ranks = [json.loads(Path(out, f"memory-rank{r}.json").read_text()) for r in range(args.shards)]
    for rank, marks in enumerate(ranks):
        above = {name: round(value - marks["runtime"], 3) for name, value in marks.items() if name != "runtime"}
        print(json.dumps({"rank": rank, "runtime_gib": round(marks["runtime"], 3), "above_runtime_gib": above,
                          "estimate_training_gib": round(estimate.training / GIB, 3),
                          "estimate_saving_gib": round(estimate.saving / GIB, 3)}))


if __name__ == "__main__":
    main()
