"""Pareto table on SmolLM2-135M-Instruct: TopK, BatchTopK, JumpReLU and Matryoshka from one pass over its tokens.

Harvests `--hook` over `--source` into an fp16 cache (resumed if `--work` already holds it), trains every
(variant, L0) dictionary from ONE pass over the cache (`evaluation.sweep`), evaluates each on sotu windows
with another seed (FVU, L0, CE-loss and KL splice scores against zero and mean ablation).

Run: python benchmarks/smollm2_pareto.py [--tokens 2e6] [--l0 16,32,64] [--expansion 4] [--eval-tokens 4096]
(the recorded 2M-token table: about 1 CPU-hour of training on 2 cores after a ~40 min harvest).
Prints a Markdown table; the recorded figures live in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import torch

import mechscope
from mechscope.data import ActivationCache, harvest
from mechscope.dictionaries import TrainConfig
from mechscope.evaluation.sweep import sweep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hook", default="blocks.15.hook_resid_post")
    parser.add_argument("--source", default="pydocs+sotu")
    parser.add_argument("--tokens", type=float, default=2e6, help="harvested tokens = training tokens (one pass)")
    parser.add_argument("--archs", default="topk,batchtopk,jumprelu,matryoshka")
    parser.add_argument("--l0", default="16,32,64")
    parser.add_argument("--expansion", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=1024, help="one pass: tokens / batch = steps")
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--work", default="/tmp/mechscope-smollm2-pareto")
    args = parser.parse_args()

    model = mechscope.load_model("smollm2", device="auto")
    work = Path(args.work)
    started = time.perf_counter()
    cache_dir = harvest(model, args.source, [args.hook], tokens=int(args.tokens), out=work / "acts", context=128,
                        batch_size=16, dtype="float16")
    harvested = time.perf_counter() - started
    tokens = ActivationCache(cache_dir).info()["tokens"]
    started = time.perf_counter()
    rows = sweep(cache_dir, model, work / "sweep", args.archs.split(","), [int(k) for k in args.l0.split(",")],
                 expansion=args.expansion, train_config=TrainConfig(tokens=tokens, batch_size=args.batch_size),
                 source="sotu", eval_tokens=args.eval_tokens, hook=args.hook)
    swept = time.perf_counter() - started

    print(f"\nSmolLM2-135M-Instruct ({model.describe()['quantization']}) on {model.device}, {args.hook}, "
          f"{tokens:,} {args.source} tokens harvested in {harvested:.0f}s (fp16 cache), one training pass, "
          f"d_sae {int(args.expansion * model.info.d_model):,}; eval on ~{args.eval_tokens:,} sotu tokens; "
          f"train + eval {swept:.0f}s; torch threads {torch.get_num_threads()}, {platform.machine()}, {date.today()}\n")
    print("| dictionary | L0 | FVU | CE score (zero abl.) | CE score (mean abl.) | KL score (zero) | CE clean / spliced |")
    print("|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["architecture"], r["l0"])):
        ds = row["downstream"]
        print(f"| {row['name']} | {row['l0']:.1f} | {row['fvu']:.5f} | {ds['ce_score_zero']:.3f} | "
              f"{ds['ce_score_mean']:.3f} | {ds['kl_score_zero']:.3f} | {ds['ce_clean']:.3f} / {ds['ce_spliced']:.3f} |")


if __name__ == "__main__":
    main()
