"""A 262,144-latent TopK SAE on SmolLM2 trained with latent sharding over local gloo ranks.

Harvests a small bf16 cache of blocks.15.hook_resid_post (train) and a held-out one (seed 1), prints the
memory estimate, trains with `latent_shards` ranks (each records its peak RSS), then reports tokens/s,
peak memory per rank against the estimate and held-out FVU (and optionally the CE splice score).
Run under `flock /tmp/mechscope-heavy.lock` on a shared machine:
    PYTHONPATH=src python benchmarks/latent_shards_smollm2.py --work /tmp/shards262k
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mechscope.data import ActivationCache, harvest
from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.latent_shards import spawn
from mechscope.dictionaries.memory import estimate_memory
from mechscope.evaluation.reconstruction import fraction_of_variance_unexplained

HOOK = "blocks.15.hook_resid_post"


def _rank(cache: str, cfg: DictionaryConfig, out: str, tcfg: TrainConfig) -> None:
    """One rank: train, then record the RSS before training and its peak (VmHWM: ru_maxrss would include the
    parent's RSS at fork time)."""
    import torch.distributed as dist

    before = _status_kib("VmRSS") * 1024
    train(cache, cfg, out, tcfg)
    peak = _status_kib("VmHWM") * 1024
    Path(out, f"rss-rank{dist.get_rank()}.json").write_text(json.dumps({"before": before, "peak": peak}))


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def _held_out_fvu(directory: Path, x: torch.Tensor, chunk: int = 512) -> float:
    sae = load_dictionary(directory)
    with torch.no_grad():
        x_hat = torch.cat([sae(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    return fraction_of_variance_unexplained(x, x_hat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/shards262k")
    parser.add_argument("--cache-tokens", type=int, default=100_000)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    parser.add_argument("--tokens", type=int, default=98_304, help="training token budget")
    parser.add_argument("--d-sae", type=int, default=262_144)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--splice-tokens", type=int, default=0, help=">0: also the CE splice score on this many")
    args = parser.parse_args()
    work = Path(args.work)

    from mechscope import load_model

    model = load_model("smollm2", device="cpu")
    started = time.perf_counter()
    cache = harvest(model, "pydocs", HOOK, tokens=args.cache_tokens, out=work / "acts", dtype="bfloat16")
    held = harvest(model, "pydocs", HOOK, tokens=args.eval_tokens, out=work / "held_out", dtype="bfloat16", seed=1)
    harvest_s = time.perf_counter() - started
    print(f"caches: {ActivationCache(cache).info()['bytes'] / 2**20:.1f} MiB bf16, {harvest_s:.0f} s")

    cfg = DictionaryConfig(576, args.d_sae, "topk", k=args.k, hook_name=HOOK, model_name="smollm2")
    tcfg = TrainConfig(tokens=args.tokens, batch_size=args.batch_size, lr=args.lr, lr_warmup_steps=5,
                       latent_shards=args.shards, device="cpu", log_every=4, checkpoint_every=10**9)
    estimate = estimate_memory(cfg, args.batch_size, args.shards, 1, "bfloat16")
    print(estimate.table())
    for width, shards in ((1_048_576, 1), (1_048_576, 8)):
        print(estimate_memory(DictionaryConfig(576, width, "topk", k=args.k), 4096, shards, 1, "bfloat16").table())

    out = work / f"sae_{args.shards}shards"
    started = time.perf_counter()
    spawn(args.shards, _rank, (str(cache), cfg, str(out), tcfg))
    wall = time.perf_counter() - started
    run = out / f"topk_{args.d_sae}_k{args.k}"
    log = [json.loads(line) for line in (run / "training_log.jsonl").read_text().splitlines()]
    rss = [json.loads((out / f"rss-rank{r}.json").read_text()) for r in range(args.shards)]
    x = ActivationCache(held).get(HOOK, slice(None)).float()
    result = {
        "d_sae": args.d_sae, "k": args.k, "shards": args.shards, "batch_size": args.batch_size,
        "tokens": log[-1]["tokens"], "train_s": log[-1]["elapsed_s"], "wall_s": round(wall, 1),
        "tokens_per_s": round(log[-1]["tokens"] / log[-1]["elapsed_s"], 1),
        "held_out_fvu": round(_held_out_fvu(run, x), 4), "train_fvu_last": log[-1]["fvu"],
        "peak_rss_gib": [round(r["peak"] / 2**30, 3) for r in rss],
        "rss_before_gib": [round(r["before"] / 2**30, 3) for r in rss],
        "estimate_per_rank_gib": round(estimate.per_rank / 2**30, 3),
        "estimate_training_gib": round(estimate.training / 2**30, 3),
        "estimate_init_gib": round(estimate.initialisation / 2**30, 3)}
    if args.splice_tokens:
        from mechscope.evaluation import evaluate

        scores = evaluate(model, load_dictionary(run), "pydocs", tokens=args.splice_tokens, batch_size=4, save=False)
        result["splice"] = {"tokens": scores.tokens, "fvu": scores.fvu, "l0": scores.l0, **scores.downstream}
    print(json.dumps(result, indent=1))
    (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
