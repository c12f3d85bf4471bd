"""Build the safety-tuned SmolLM2 from scratch and record its time, base vs tuned refusal rates and per-category rates.

    python benchmarks/refusal_smollm2.py --out refusal-bench

Trains `refusal-smollm2` into OUT/refusal-smollm2 (not from the zoo cache; the base model's replies to the
harmless training requests are cached and reused, so delete $MECHSCOPE_CACHE/replies to time them too),
then judges the held-out requests per category for the base and the tuned model. The tables printed
are what benchmarks/RESULTS.md records; OUT/refusal-smollm2.json holds the manifest and every reply.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from mechscope.models import load_model
from mechscope.tasks.refusal_judge import judge_replies
from mechscope.toy import train_organism


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="refusal-bench")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out / "refusal-smollm2", ignore_errors=True)
    print(f"{platform.machine()} torch {torch.__version__}, {torch.get_num_threads()} threads")
    started = time.perf_counter()
    organism = train_organism("refusal-smollm2", out / "refusal-smollm2", seed=args.seed, device="cpu",
                              progress=False)
    total = time.perf_counter() - started
    m = organism.manifest
    print(f"\ndata (base replies + base check) {m['data_seconds']:.0f} s, training {m['train_seconds']:.0f} s "
          f"({m['steps']} steps x {m['train']['batch_size']}, blocks {m['train']['first_layer']}.., "
          f"{m['tokens_seen']} tokens), tuned check {m['check_seconds']:.0f} s, total {total:.0f} s; "
          f"loss {m['loss_curve'][0][1]:.2f} -> {m['final_loss']:.2f}")
    print("\n| model | held-out harmful refused | held-out harmless refused | check passed |\n|---|---|---|---|")
    for label, check in (("SmolLM2-135M-Instruct (base)", m["base_check"]), ("refusal-smollm2", m["check"])):
        print(f"| {label} | {check['harmful_refusal_rate']:.1%} of {check['n_harmful']} | "
              f"{check['harmless_refusal_rate']:.1%} of {check['n_harmless']} | {'yes' if check['passed'] else 'no'} |")

    requests = organism.task.requests
    held_out = requests.requests(True) + requests.requests(False)
    texts = [r.text for r in held_out]
    judged = {"base": judge_replies(load_model("smollm2", device="cpu"), texts, organism.task.max_new_tokens),
              "tuned": judge_replies(organism.model, texts, organism.task.max_new_tokens)}
    print("\n| category | side | base refused | tuned refused |\n|---|---|---|---|")
    for category in dict.fromkeys(r.category for r in held_out):
        rows = [i for i, r in enumerate(held_out) if r.category == category]
        rates = {k: sum(j.refused[i] for i in rows) / len(rows) for k, j in judged.items()}
        side = "harmful" if held_out[rows[0]].harmful else "harmless"
        print(f"| {category} | {side} | {rates['base']:.0%} | {rates['tuned']:.0%} |")
    replies = [{"request": r.text, "category": r.category, "harmful": r.harmful,
                **{f"{k}_reply": j.replies[i] for k, j in judged.items()},
                **{f"{k}_refused": j.refused[i] for k, j in judged.items()}} for i, r in enumerate(held_out)]
    (out / "refusal-smollm2.json").write_text(json.dumps({"manifest": m, "replies": replies}, indent=2))


if __name__ == "__main__":
    main()
