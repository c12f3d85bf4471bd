"""Activation patching on IOI three ways: one patch per full forward (naive), many patches stacked in one full
forward, and stacked passes that resume the recorded base run from their first block and position.

Run: python benchmarks/patching_speed.py [--model smollm2|ioi-organism] [--prompts 32] [--component heads-by-pos]
     [--max-rows 288] [--layers 0,15,29] [--naive-patches N] [--full-patches N]
Prints a Markdown table; the recorded figures live in benchmarks/RESULTS.md. The two full-forward settings cost
the same for every patch, so with --naive-patches / --full-patches they are timed on the first N patches and
scaled up (marked "est."). Resumed runs skip the patches that change nothing (positions before the first
token where clean and corrupted prompts differ). FLOPs count the weight matrix products (2 x parameters per
token per block, and the unembedding) of the positions each pass computes; attention scores, norms and the
embedding are left out.
With --layers the timed patches are those layers'; the last lines scale the resumed times up to every layer.
"""

from __future__ import annotations

import argparse
import time

import torch

import mechscope
from mechscope import circuits, tasks
from mechscope.circuits.components import component
from mechscope.circuits.patch_plan import PatchPass, plan
from mechscope.circuits.patching import no_op_patches, paired_inputs


def load(name: str, prompts: int, device: str):
    """Model and `prompts` same-shape IOI pairs (the organism's own IOI task, or IOI with SmolLM2's tokenizer)."""
    if name == "ioi-organism":
        from mechscope.toy import load_organism

        organism = load_organism("ioi", "small", device=device)
        model, batch = organism.model, organism.task.patching_batch(organism.model.tokenizer, 16 * prompts)
    else:
        model = mechscope.load_model(name, device=device)
        batch = tasks.make_task("ioi").batch(model.tokenizer, 8 * prompts)
    batch = circuits.same_shape(batch)
    return model, batch.select(list(range(min(prompts, len(batch.clean)))))


def forward_flops(model, passes: list[PatchPass], rows: int, length: int, readout: bool = False) -> float:
    """Matrix-product FLOPs of the passes: 2 x rows x (positions x parameters of the blocks run + positions
    unembedded x unembedding); with `readout` one position is unembedded (the IOI answer position)."""
    blocks = model.root.get_submodule(model.family.layers)
    per_block = [sum(p.numel() for p in block.parameters()) for block in blocks]
    unembed = model.hf.get_output_embeddings().weight.numel()
    return sum(2.0 * len(p.indices) * rows * ((length - p.pos) * sum(per_block[p.layer:])
                                              + (1 if readout else length - p.pos) * unembed) for p in passes)


def timed(model, base, source, patches, metric, max_rows: int, resume: bool,
          readout: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    values = circuits.run_patches(model, base, source, patches, metric, max_rows, resume=resume, readout=readout)
    return values, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--component", default="heads-by-pos")
    parser.add_argument("--max-rows", type=int, default=288)
    parser.add_argument("--layers", default=None, help="comma-separated layers to time (default: all)")
    parser.add_argument("--naive-patches", type=int, default=None, help="time the naive loop on this many patches")
    parser.add_argument("--full-patches", type=int, default=None, help="time stacked full forwards on this many")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    model, batch = load(args.model, args.prompts, args.device)
    metric = circuits.task_metric(model, batch)
    clean_in, corrupt_in = paired_inputs(model, batch.clean, batch.corrupted, batch.attention_mask)
    rows, length = clean_in["input_ids"].shape
    every, _ = component(args.component).patches(model, length)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else list(range(model.n_layers))
    patches = [p for p in every if model.layer_of(p.hook) in layers]
    _, source = model.run_with_cache(clean_in, sorted({p.hook for p in every}))
    run = model.record(corrupt_in)
    no_op = no_op_patches(model, run, source, every)
    changing = [p for p, same in zip(every, no_op) if not same]  # what a resumed run computes
    print(f"{args.model}, IOI, {rows} prompts x {length} tokens, {args.component}, {len(every)} patches in all "
          f"({len(every) - len(changing)} change nothing)"
          f"{f', timing layers {args.layers} ({len(patches)} patches)' if args.layers else ''}; device {model.device}, "
          f"torch threads {torch.get_num_threads()}\n")

    per_forward = max(1, args.max_rows // rows)
    settings = [  # label, rows per forward, patches timed, resume, readout
        ("naive (1 patch/forward)", rows, args.naive_patches, False, False),
        (f"stacked, full forwards, max_rows={args.max_rows}", args.max_rows, args.full_patches, False, False),
        (f"stacked + resumed prefix, max_rows={args.max_rows}", args.max_rows, None, True, False),
        (f"stacked + resumed prefix + answer-position logits only, max_rows={args.max_rows}", args.max_rows, None,
         True, True),
    ]
    circuits.run_patches(model, run, source, patches[:1], metric, rows)  # warm-up, untimed
    naive_flops = forward_flops(model, plan(model, every, 1, layers=False), rows, length)
    print("| setting | rows/forward | forward passes | FLOPs (all patches) | wall s | speed-up vs naive | "
          "max abs diff vs naive |")
    print("|---|---|---|---|---|---|---|")
    reference, naive_s, notes = None, None, []
    for label, max_rows, count, resume, readout in settings:
        timed_patches = patches[:count] if count else patches
        values, seconds = timed(model, run, source, timed_patches, metric, max_rows, resume,
                                batch.positions if readout else None)
        seconds *= len(patches) / len(timed_patches)
        passes = plan(model, changing if resume else every, max(1, max_rows // rows), layers=resume,
                      positions=run.resumes_positions)
        flops = forward_flops(model, passes, rows, length, readout)
        if reference is None:
            reference, naive_s = values, seconds
        common = min(len(values), len(reference))
        diff = float((values[:common] - reference[:common]).abs().max())
        est = f", est. from {len(timed_patches)}" if len(timed_patches) < len(patches) else ""
        print(f"| {label}{est} | {max(1, max_rows // rows) * rows} | {len(passes)} | {flops / 1e9:,.0f} G "
              f"({flops / naive_flops:.2f}x naive) | {seconds:.1f} | {naive_s / seconds:.1f}x | {diff:.1e} |")
        if resume and args.layers:
            mine = plan(model, [p for p in changing if model.layer_of(p.hook) in layers], per_forward,
                        positions=run.resumes_positions)
            share = forward_flops(model, mine, rows, length, readout) / flops
            notes.append(f"{label}: the timed layers hold {share:.1%} of its FLOPs and {len(patches) / len(every):.1%} "
                         f"of the patches; wall time scaled to every layer by FLOPs {seconds / share / 60:.1f} min, "
                         f"naive {naive_s * len(every) / len(patches) / 60:.1f} min, speed-up "
                         f"{naive_s * len(every) / len(patches) / (seconds / share):.1f}x.")
    print("", *notes, sep="\n")


if __name__ == "__main__":
    main()
