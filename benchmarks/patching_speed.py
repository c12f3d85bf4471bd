"""Stacked activation patching (many patches per forward pass) against one patch per forward pass, on IOI.

Run: python benchmarks/patching_speed.py [--model smollm2] [--prompts 8] [--component heads]
     [--max-rows 64,128,256] [--layers 0,1] [--naive-patches N]
Prints a Markdown table; the recorded figures live in benchmarks/RESULTS.md. The naive loop is
`max_rows == prompts`; with --naive-patches it times only the first N patches and scales up (marked "est.").
"""

from __future__ import annotations

import argparse
import time

import torch

import mechscope
from mechscope import circuits, tasks
from mechscope.circuits.components import component
from mechscope.circuits.patching import paired_inputs


def patches_of(model, comp_name: str, length: int, layers: list[int] | None):
    """Every patch of the component, optionally only those in `layers`."""
    patches, _ = component(comp_name).patches(model, length)
    if layers is None:
        return patches
    return [p for p in patches if int(p.hook.split(".")[1]) in layers]


def timed_patches(model, base, source, patches, metric, max_rows: int) -> tuple[torch.Tensor, float, int]:
    start = time.perf_counter()
    values = circuits.run_patches(model, base, source, patches, metric, max_rows)
    forwards = -(-len(patches) // max(1, max_rows // len(base["input_ids"])))
    return values, time.perf_counter() - start, forwards


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--component", default="heads")
    parser.add_argument("--max-rows", default="64,128,256")
    parser.add_argument("--layers", default=None, help="comma-separated layers to patch (default: all)")
    parser.add_argument("--naive-patches", type=int, default=None, help="time the naive loop on this many patches")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    model = mechscope.load_model(args.model, device=args.device)
    batch = circuits.same_shape(tasks.make_task("ioi").batch(model.tokenizer, 4 * args.prompts))
    batch = batch.select(list(range(min(args.prompts, len(batch.clean)))))
    metric = circuits.task_metric(model, batch)
    clean_in, corrupt_in = paired_inputs(model, batch.clean, batch.corrupted, batch.attention_mask)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    patches = patches_of(model, args.component, clean_in["input_ids"].shape[1], layers)
    _, source = model.run_with_cache(clean_in, sorted({p.hook for p in patches}))
    rows, length = clean_in["input_ids"].shape
    print(f"{args.model}, IOI, {rows} prompts x {length} tokens, {args.component}"
          f"{' layers ' + args.layers if layers else ''}: {len(patches)} patches, device {model.device}, "
          f"torch threads {torch.get_num_threads()}\n")

    circuits.run_patches(model, corrupt_in, source, patches[:1], metric, rows)  # warm-up, untimed
    naive = patches[:args.naive_patches] if args.naive_patches else patches
    naive_values, naive_s, naive_forwards = timed_patches(model, corrupt_in, source, naive, metric, rows)
    scale = len(patches) / len(naive)
    label = "naive (1 patch/forward)" + (f", est. from {len(naive)} patches" if scale > 1 else "")
    print("| setting | rows/forward | forward passes | wall s | speed-up | max abs diff vs naive |")
    print("|---|---|---|---|---|---|")
    print(f"| {label} | {rows} | {round(naive_forwards * scale)} | {naive_s * scale:.1f} | 1.0x | - |")
    for max_rows in (int(x) for x in args.max_rows.split(",")):
        values, seconds, forwards = timed_patches(model, corrupt_in, source, patches, metric, max_rows)
        diff = float((values[:len(naive)] - naive_values).abs().max())
        per_forward = max(1, max_rows // rows) * rows
        print(f"| stacked max_rows={max_rows} | {per_forward} | {forwards} | {seconds:.1f} | "
              f"{naive_s * scale / seconds:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
