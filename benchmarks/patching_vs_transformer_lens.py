"""mechscope's activation patching side by side with TransformerLens's `patching` utilities on SmolLM2 and IOI.

TransformerLens is never a mechscope dependency: run this in a venv that has it (TransformerBridge boots the
same converted HF directory offline), with mechscope on the path:
    PYTHONPATH=src /tmp/tlvenv/bin/python benchmarks/patching_vs_transformer_lens.py [--prompts 32]
        [--layers 0,15,29] [--every 7]
TransformerLens runs one patch per forward pass (its generic_activation_patch loop), so it is timed on every
`--every`-th patch of the chosen layers (an index_df) and scaled to all patches; mechscope runs the same
patches (their values are compared), then every patch of the chosen layers, timed and scaled to all layers by
those layers' share of the resumed FLOPs; it resumes the base run and unembeds only the answer position, as
`circuits.patch` does. Metric: the IOI task's logit difference, averaged over prompts.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from mechscope import circuits
from mechscope.circuits.components import Patch, component
from mechscope.circuits.patch_plan import plan
from mechscope.circuits.patching import no_op_patches, paired_inputs
from patching_speed import forward_flops, load  # benchmarks/ is the script's folder


def bridge_of(model):
    """A TransformerBridge over a second copy of the same HF directory."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    path = model.hf.config._name_or_path
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return TransformerBridge.boot_transformers(path, hf_model=hf, tokenizer=model.tokenizer, device="cpu")


def side_by_side(model, bridge, batch, name: str, tl_fn, rows: list[tuple[int, ...]], to_patch, every: list[Patch],
                 layers: list[int], max_rows: int) -> str:
    """One Markdown row: TransformerLens on `rows` against mechscope on the same patches, and the time of each to
    patch all of `every` (TransformerLens: per patch x all; mechscope: `layers` timed, scaled by their FLOP share)."""
    metric = circuits.task_metric(model, batch)
    clean_in, corrupt_in = paired_inputs(model, batch.clean, batch.corrupted, batch.attention_mask)
    rows_in, length = clean_in["input_ids"].shape
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean_in["input_ids"])
    start = time.perf_counter()
    with torch.no_grad():
        theirs = tl_fn(bridge, corrupt_in["input_ids"], clean_cache, lambda logits: metric(logits).mean(),
                       index_axis_names=None,
                       index_df=pd.DataFrame(rows, columns=["layer", "pos", "head"][:len(rows[0])]))
    tl_s = time.perf_counter() - start
    _, source = model.run_with_cache(clean_in, sorted({p.hook for p in every}))
    run = model.record(corrupt_in)
    readout = batch.positions
    ours = circuits.run_patches(model, run, source, [to_patch(*row) for row in rows], metric, max_rows, readout=readout)
    timed = [p for p in every if model.layer_of(p.hook) in layers]
    start = time.perf_counter()
    circuits.run_patches(model, run, source, timed, metric, max_rows, readout=readout)
    ours_s = time.perf_counter() - start
    per_forward = max(1, max_rows // rows_in)
    no_op = no_op_patches(model, run, source, every)
    changing = [p for p, same in zip(every, no_op) if not same]
    timed_changing = [p for p in changing if model.layer_of(p.hook) in layers]
    share = (forward_flops(model, plan(model, timed_changing, per_forward), rows_in, length, readout=True)
             / forward_flops(model, plan(model, changing, per_forward), rows_in, length, readout=True))
    diff = float((ours - theirs.cpu()).abs().max())
    tl_all, ours_all = tl_s * len(every) / len(rows), ours_s / share
    return (f"| {name} | {len(every)} | {len(rows)} in {tl_s:.0f} s | {tl_all / 60:.1f} min | {len(timed)} in "
            f"{ours_s:.0f} s | {ours_all / 60:.1f} min | {tl_all / ours_all:.1f}x | {diff:.1e} |")


def main() -> None:
    from transformer_lens import patching

    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--layers", default="0,15,29", help="layers TransformerLens patches (a sample)")
    parser.add_argument("--every", type=int, default=7, help="TransformerLens runs every n-th patch of those layers")
    parser.add_argument("--max-rows", type=int, default=288)
    args = parser.parse_args()

    model, batch = load("smollm2", args.prompts, "cpu")
    bridge = bridge_of(model)
    length, heads = batch.clean.shape[1], model.info.n_heads
    layers = [int(x) for x in args.layers.split(",")]
    print(f"SmolLM2-135M, IOI, {len(batch.clean)} prompts x {length} tokens; torch threads {torch.get_num_threads()}\n")
    print("| component | patches | TransformerLens ran | TransformerLens, all (est.) | mechscope ran | "
          "mechscope, all (est.) | speed-up | max abs diff on TL's patches |")
    print("|---|---|---|---|---|---|---|---|")
    head_rows = [(l, p, h) for l in layers for p in range(length) for h in range(heads)][::args.every]
    every_head, _ = component("heads-by-pos").patches(model, length)
    print(side_by_side(model, bridge, batch, "heads-by-pos", patching.get_act_patch_attn_head_out_by_pos, head_rows,
                       lambda l, p, h: Patch(f"blocks.{l}.attn.hook_z", h, p), every_head, layers, args.max_rows))
    resid_rows = [(l, p) for l in layers for p in range(length)]
    every_resid, _ = component("resid").patches(model, length)
    print(side_by_side(model, bridge, batch, "resid", patching.get_act_patch_resid_pre, resid_rows,
                       lambda l, p: Patch(f"blocks.{l}.hook_resid_pre", pos=p), every_resid, layers, args.max_rows))


if __name__ == "__main__":
    main()
