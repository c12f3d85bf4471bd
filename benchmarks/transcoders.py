"""Transcoder training speed and quality: per-layer transcoders next to one cross-layer transcoder trained on the
same cached MLP inputs and outputs (first layers of SmolLM2, and the tiny ReLU GPT-2 of the tests); tokens/s of
training, then per-layer FVU and L0 of the MLP output and CE/KL with every covered MLP replaced.

    python benchmarks/transcoders.py [--layers 3] [--tokens 16384] [--width 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mechscope.data import harvest
from mechscope.dictionaries import (CLTConfig, CrossLayerTranscoder, DictionaryConfig, TrainConfig, TranscoderSet,
                                    train, train_clt)
from mechscope.dictionaries.formats import load_dictionary
from mechscope.evaluation import evaluate_transcoders

HOOK_IN, HOOK_OUT = "blocks.{layer}.ln2.hook_normalized", "blocks.{layer}.hook_mlp_out"


def bench(name: str, model, source, layers: list[int], tokens: int, batch_size: int, width: int, k: int, out: Path,
          eval_source, eval_tokens: int, context: int) -> None:
    hooks = [h.format(layer=layer) for layer in layers for h in (HOOK_IN, HOOK_OUT)]
    started = time.perf_counter()
    cache = harvest(model, source, hooks, tokens=tokens, out=out / "cache", context=context)
    print(f"{name}: harvested {tokens} tokens x {len(hooks)} hooks in {time.perf_counter() - started:.1f} s")
    d_model = model.info.d_model
    tcfg = TrainConfig(tokens=tokens, batch_size=batch_size, lr=1e-3, lr_warmup_steps=5, device="cpu",
                       log_every=10**6)

    started = time.perf_counter()
    per_layer = []
    for layer in layers:
        dirs = train(cache, DictionaryConfig(d_model, width * d_model, "topk", k=k), out / f"plt_{layer}", tcfg,
                     hook=HOOK_IN.format(layer=layer), hook_out=HOOK_OUT.format(layer=layer))
        per_layer.append(load_dictionary(dirs[0]))
    seconds = time.perf_counter() - started
    print(f"{name}: per-layer TopK transcoders ({len(layers)} x {width * d_model} latents, k={k}): "
          f"{tokens * len(layers) / seconds:,.0f} layer-tokens/s, {tokens / seconds:,.0f} tokens/s for the set")
    tset = TranscoderSet(per_layer, layers, model.info.name)

    clts = {}
    for activation, options in (("topk", {"k": k * len(layers)}), ("jumprelu", {"sparsity_coefficient": 0.01})):
        cfg = CLTConfig(len(layers), d_model, width * d_model, activation=activation, first_layer=layers[0],
                        hook_in=HOOK_IN, hook_out=HOOK_OUT, **options)
        started = time.perf_counter()
        clts[activation] = CrossLayerTranscoder.load(train_clt(cache, cfg, out / "clt", tcfg))
        seconds = time.perf_counter() - started
        print(f"{name}: CLT {activation} ({len(layers)} x {width * d_model} latents): "
              f"{tokens / seconds:,.0f} tokens/s (every layer at once)")

    for label, replacement in (("per-layer", tset), *((f"CLT {a}", c) for a, c in clts.items())):
        result = evaluate_transcoders(model, replacement, eval_source, tokens=eval_tokens, context=context,
                                      batch_size=8, save=False)
        ds = result.downstream
        print(f"{name} {label}: FVU per layer {[round(v, 3) for v in result.fvu]}, L0 per layer "
              f"{[round(v, 1) for v in result.l0]}; CE clean {ds['ce_clean']:.3f} replaced {ds['ce_spliced']:.3f} "
              f"(score vs zero {ds['ce_score_zero']:.3f}), KL {ds['kl_spliced']:.3f}, next-token agreement "
              f"{ds['next_token_agreement']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=65536)
    parser.add_argument("--width", type=int, default=4, help="latents per layer, times d_model")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        import sys
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.dictionaries.exact_transcoders import TEXT, relu_gpt2

        bench("tiny relu gpt2", relu_gpt2(), TEXT * 40, [0, 1, 2], 32768, 256, args.width, 8, Path(tmp) / "tiny",
              TEXT, 400, 16)
        if not args.skip_smollm2:
            from mechscope import load_model

            model = load_model("smollm2", device="cpu")
            bench("smollm2", model, "sotu", list(range(args.layers)), args.tokens, 1024, args.width, args.k,
                  Path(tmp) / "smollm2", "pydocs", 2048, 128)
