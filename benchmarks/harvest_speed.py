"""Harvest throughput against the bare HF forward pass over the same tokens, and cache read speed.

Run: python benchmarks/harvest_speed.py [--tokens N] [--layer L] [--model minilm]
Prints a Markdown table; the recorded figures live in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch
from safetensors.torch import load_file

import mechscope
from mechscope.data import ActivationCache, harvest, pack, pydocs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--tokens", type=int, default=65_536)
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", help="storage dtype of the cache")
    parser.add_argument("--random-gpt2", action="store_true",
                        help="a randomly initialised GPT-2-small-sized model (124M) instead of --model")
    args = parser.parse_args()

    model = mechscope.load_model(args.model, device=args.device)
    if args.random_gpt2:  # compute per token of a real LM, with MiniLM's tokenizer feeding it ids
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        gpt2 = GPT2LMHeadModel(GPT2Config(n_positions=args.context)).eval()
        model = mechscope.load_model(gpt2, tokenizer=model.tokenizer, device=args.device)
        args.model = "random GPT-2 small (124M)"
    hf = model.hf
    hook = f"blocks.{args.layer}.hook_resid_post"
    docs = list(islice(pydocs(), 20_000))
    windows = torch.stack(list(islice(pack(model.tokenizer, docs, args.context), args.tokens // args.context)))
    batches = [w.to(model.device) for w in windows.split(args.batch_size)]
    n_tokens = windows.numel()

    def bare_full():
        with torch.no_grad():
            for b in batches:
                hf(input_ids=b)

    def hooked():
        for b in batches:
            model.run_with_cache(b, names=[hook], stop_at_layer="auto")

    holder_path, _, name = model.family.layers.rpartition(".")
    holder = model.root.get_submodule(holder_path) if holder_path else model.root
    blocks = getattr(holder, name)

    def bare_truncated():  # the base model (no LM head) with blocks after `layer` removed
        setattr(holder, name, torch.nn.ModuleList(list(blocks)[: args.layer + 1]))
        try:
            with torch.no_grad():
                for b in batches:
                    model.root(input_ids=b)
        finally:
            setattr(holder, name, blocks)

    tmp = Path(tempfile.mkdtemp())

    def harvested():
        shutil.rmtree(tmp / "cache", ignore_errors=True)
        harvest(model, docs, [hook], tokens=n_tokens, out=tmp / "cache", context=args.context,
                batch_size=args.batch_size, exclude_special=False, shuffle_buffer=0, dtype=args.dtype)

    bare_full()  # warm-up
    rows = {}
    for label, fn in [("bare HF forward, all layers", bare_full),
                      (f"bare HF forward truncated after block {args.layer}", bare_truncated),
                      ("run_with_cache, stop_at_layer='auto'", hooked),
                      ("harvest() end to end (tokenise, forward, write shards)", harvested)]:
        rows[label] = min(timed(fn) for _ in range(2))

    cache = ActivationCache(tmp / "cache")
    gb = sum(s.reader.path.stat().st_size for s in cache._shards) / 1e9
    files = [s.reader.path for s in cache._shards]
    raw = min(timed(lambda: [t.sum() for f in files for t in load_file(str(f)).values()]) for _ in range(3))
    shuffled = min(timed(lambda: list(cache.batches(4096, hook, seed=0))) for _ in range(3))

    truncated_time = rows[f"bare HF forward truncated after block {args.layer}"]
    print(f"\nmodel {args.model} on {model.device}, {n_tokens} tokens, context {args.context}, "
          f"batch {args.batch_size}, hook {hook}, cache dtype {args.dtype}, torch threads {torch.get_num_threads()}\n")
    print("| what | seconds | tokens/s | vs truncated bare |\n|---|---|---|---|")
    for label, seconds in rows.items():
        print(f"| {label} | {seconds:.2f} | {n_tokens / seconds:,.0f} | {seconds / truncated_time:.3f}x |")
    print(f"\n| cache read ({gb:.2f} GB) | seconds | GB/s |\n|---|---|---|")
    print(f"| raw safetensors load_file of all shards (every byte touched) | {raw:.3f} | {gb / raw:.2f} |")
    print(f"| ActivationCache.batches(4096), global shuffle | {shuffled:.3f} | {gb / shuffled:.2f} |")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
