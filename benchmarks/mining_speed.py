"""Mining throughput against the work it cannot avoid, measured over the same tokens in the same run.

The unavoidable work is the forward pass stopped at the hook plus the dictionary's encode, run through
the very batch producer mining uses; the mining pass adds top-k, histograms, quantile sampling, negative
pools and co-occurrence signatures. A TopK SAE of --d-sae latents is trained first from a short harvest
(other windows than the mined ones) unless --sae names one.

Run: python benchmarks/mining_speed.py [--random-gpt2] [--tokens N] [--d-sae 16384]
Prints a Markdown table; the recorded figures live in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from datetime import date
from pathlib import Path

import torch

import mechscope
from mechscope.data import harvest, text_source
from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.features import mine
from mechscope.features.batches import text_batches
from mechscope.features.dashboard import write_dashboard


def trained_sae(model, hook: str, args, work: Path) -> Path:
    """A TopK SAE at `hook`, trained on windows harvested with another seed than the mined ones."""
    cache = harvest(model, "pydocs", [hook], tokens=args.train_tokens, out=work / "train-cache", context=128,
                    batch_size=32, seed=1)
    d_in = model.info.d_model
    config = DictionaryConfig(d_in, args.d_sae, "topk", k=args.k, hook_name=hook, model_name=model.info.name)
    return train(cache, [config], work / "sae", TrainConfig(tokens=2 * args.train_tokens, batch_size=4096,
                                                            log_every=1000))[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--random-gpt2", action="store_true", help="a randomly initialised GPT-2 small (124M)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=65_536)
    parser.add_argument("--d-sae", type=int, default=16_384)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--train-tokens", type=int, default=131_072)
    parser.add_argument("--sae", help="a trained dictionary to use instead of training one")
    parser.add_argument("--work", default="/tmp/mechscope-mining-bench")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    model = mechscope.load_model(args.model, device="auto")
    if args.random_gpt2:  # compute per token of a real LM, with MiniLM's tokenizer feeding it ids
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        gpt2 = GPT2LMHeadModel(GPT2Config(n_positions=128)).eval()
        model = mechscope.load_model(gpt2, tokenizer=model.tokenizer, device="auto")
        args.model = "random-init GPT-2 small (124M, d_model 768)"
    hook = f"blocks.{args.layer}.hook_resid_post"
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    sae_dir = Path(args.sae) if args.sae else trained_sae(model, hook, args, work)
    print(f"SAE ready in {time.perf_counter() - started:.0f}s: {sae_dir}")
    sae = mechscope.load_dictionary(sae_dir, device=str(model.device)).eval()
    source = text_source("pydocs")

    def unavoidable() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for _ in text_batches(model, sae.encode, hook, source, args.tokens, 128, 32, 0, True):
                pass
        return time.perf_counter() - start

    timings: dict[str, list[float]] = {"unavoidable": [], "pass": [], "total": [], "dashboard": []}
    for repeat in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        timings["unavoidable"].append(unavoidable())
        result = mine(model, sae, source, work / "features", tokens=args.tokens)
        timings["pass"].append(result.pass_seconds)
        timings["total"].append(result.seconds)
        board = write_dashboard(work / "features")
        timings["dashboard"].append(board.seconds)
    best = {k: min(v) for k, v in timings.items()}
    base = best["unavoidable"]
    print(f"\n{args.model} on {model.device}, hook {hook}, {result.tokens:,} tokens (pydocs, context 128, batch 32), "
          f"TopK SAE d_sae {sae.d_sae:,} k {sae.cfg.k}, torch threads {torch.get_num_threads()}, "
          f"{platform.machine()} {platform.processor() or ''}, {date.today()}; best of {args.repeats}\n")
    print("| what | seconds | tokens/s | vs unavoidable |\n|---|---|---|---|")
    for label, key in [("forward (stopped at the hook) + encode: the unavoidable work", "unavoidable"),
                       ("mining pass: the same + every per-latent statistic", "pass"),
                       ("mine() end to end: + logit weights, neighbours, Parquet, SQLite", "total")]:
        print(f"| {label} | {best[key]:.2f} | {result.tokens / best[key]:,.0f} | {best[key] / base:.3f}x |")
    print(f"\nmining adds {best['pass'] / base - 1:.1%} to the unavoidable work; dashboard for {board.latents:,} "
          f"latents: {best['dashboard']:.1f}s, {board.gzip_bytes_per_latent / 1024:.2f} KB gzip per latent page "
          f"({board.bytes_per_latent / 1024:.2f} KB raw), {board.shared_bytes / 1024:.0f} KB shared; "
          f"{result.dead} dead and {result.rare} rare latents listed")


if __name__ == "__main__":
    main()
