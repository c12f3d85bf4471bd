"""Latent-sharded transcoder and CLT training speed against one process on MiniLM's MLPs (same data, same steps).

Harvests MiniLM's MLP inputs and outputs (blocks.{layer}.hook_mlp_in -> hook_mlp_out), then trains a TopK skip
transcoder on one layer and a JumpReLU CLT over every harvested layer, once in this process and once over
`--shards` local gloo ranks, and reports training tokens/s (the log's own clock, spawn excluded), wall time, the
held-out FVU of both (they should agree: sharding does not change the step) and the memory estimate.
Run under `flock /tmp/mechscope-heavy.lock` on a shared machine:
    PYTHONPATH=src python benchmarks/transcoder_shards.py --work /tmp/tcshards
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mechscope.data import ActivationCache, harvest
from mechscope.dictionaries import CLTConfig, CrossLayerTranscoder, DictionaryConfig, TrainConfig, train, train_clt
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.memory import estimate_memory

HOOK_IN, HOOK_OUT = "blocks.{layer}.hook_mlp_in", "blocks.{layer}.hook_mlp_out"


def _fvu(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return float((prediction - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum())


def _speed(directory: Path, wall: float) -> dict:
    last = json.loads((directory / "training_log.jsonl").read_text().splitlines()[-1])
    return {"tokens_per_s": round(last["tokens"] / last["elapsed_s"], 1), "train_s": last["elapsed_s"],
            "wall_s": round(wall, 1), "train_fvu_last": last["fvu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/tcshards")
    parser.add_argument("--layers", type=int, default=2, help="layers 0..N-1 (the transcoder trains on the last)")
    parser.add_argument("--tokens", type=int, default=32_768)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--width", type=int, default=16, help="latents per layer, times d_model")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.work)

    from mechscope import load_model

    model = load_model("minilm", device="cpu")
    layers = list(range(args.layers))
    hooks = [h.format(layer=layer) for layer in layers for h in (HOOK_IN, HOOK_OUT)]
    cache = harvest(model, "pydocs", hooks, tokens=args.tokens, out=work / "acts")
    held = ActivationCache(harvest(model, "pydocs", hooks, tokens=args.eval_tokens, out=work / "held_out", seed=1))
    xs, ys = (torch.stack([held.get(h.format(layer=layer), slice(None)).float() for layer in layers], 1)
              for h in (HOOK_IN, HOOK_OUT))
    d_model, last = model.info.d_model, layers[-1]
    tc = DictionaryConfig(d_model, args.width * d_model, "topk", k=args.k, d_out=d_model, skip_connection=True)
    clt = CLTConfig(len(layers), d_model, args.width * d_model, activation="jumprelu", sparsity_coefficient=0.01,
                    hook_in=HOOK_IN, hook_out=HOOK_OUT)
    results = {"model": "minilm", "layers": layers, "tokens": args.tokens, "batch_size": args.batch_size,
               "transcoder": {"d_sae": tc.d_sae, "k": args.k, "skip": True, "layer": last},
               "clt": {"d_latent": clt.d_latent, "n_layers": len(layers), "activation": "jumprelu"}}
    for shards in (1, args.shards):
        tcfg = TrainConfig(tokens=args.tokens, batch_size=args.batch_size, lr=1e-3, lr_warmup_steps=5,
                           latent_shards=shards, device="cpu", log_every=8, checkpoint_every=10**9)
        estimate = estimate_memory(tc, args.batch_size, shards)
        started = time.perf_counter()
        run = train(cache, tc, work / f"tc_{shards}", tcfg, hook=HOOK_IN.format(layer=last),
                    hook_out=HOOK_OUT.format(layer=last))[0]
        wall = time.perf_counter() - started
        with torch.no_grad():
            fvu = _fvu(load_dictionary(run)(xs[:, -1]), ys[:, -1])
        results["transcoder"][f"shards_{shards}"] = {**_speed(run, wall), "held_out_fvu": round(fvu, 4),
                                                     "estimate_per_rank_gib": round(estimate.per_rank / 2**30, 3)}
        started = time.perf_counter()
        run = train_clt(cache, clt, work / f"clt_{shards}", tcfg)
        wall = time.perf_counter() - started
        with torch.no_grad():
            fvu = _fvu(CrossLayerTranscoder.load(run)(xs), ys)
        results["clt"][f"shards_{shards}"] = {**_speed(run, wall), "held_out_fvu": round(fvu, 4)}
        print(json.dumps(results, indent=1))
    (work / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
