"""Heap reuse in a latent-sharded TopK run: wall time and each rank's peak RSS step by step, reuse forced on or off.

Training leaves the allocator alone when latent-sharded (`reused_heap(wanted=False)`); this experiment forces the
choice in every rank to measure what reuse would buy and cost there. Synthetic activations, d_in 576, batch 2048:
    PYTHONPATH=src python benchmarks/sharded_heap.py --d-sae 65536 --steps 16 --reuse on
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import mechscope.dictionaries.training as training
from mechscope import heap
from mechscope.dictionaries import DictionaryConfig, TrainConfig
from mechscope.dictionaries.latent_shards import spawn
from mechscope.synthetic import SyntheticFeatures
from process_memory import GIB_IN_MIB, status_mib


def _rank(source, cfg: DictionaryConfig, out: str, tcfg: TrainConfig, reuse: bool) -> None:
    import torch.distributed as dist

    training.reused_heap = lambda wanted=True: heap.reused_heap(reuse)
    start, peaks, step = status_mib("VmRSS"), [], training._step

    def measured_step(*args, **kwargs):
        result = step(*args, **kwargs)
        peaks.append(round((status_mib("VmHWM") - start) / GIB_IN_MIB, 3))
        return result

    training._step = measured_step
    began = time.perf_counter()
    training.train(source, cfg, out, tcfg)
    print(json.dumps({"rank": dist.get_rank(), "heap_reuse": reuse, "wall_s": round(time.perf_counter() - began, 1),
                      "peak_above_start_gib_per_step": peaks}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-sae", type=int, default=65_536)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--reuse", choices=("on", "off"), default="on")
    args = parser.parse_args()
    cfg = DictionaryConfig(576, args.d_sae, "topk", k=32)
    tcfg = TrainConfig(tokens=args.steps * 2048, batch_size=2048, lr=1e-3, lr_warmup_steps=1,
                       latent_shards=args.shards, device="cpu", log_every=10**6, checkpoint_every=10**9,
                       init_tokens=4096)
    with tempfile.TemporaryDirectory() as out:
        spawn(args.shards, _rank, (SyntheticFeatures(4096, 576, seed=0), cfg, out, tcfg, args.reuse == "on"))


if __name__ == "__main__":
    main()
