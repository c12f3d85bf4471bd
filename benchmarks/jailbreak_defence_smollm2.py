"""Jailbreak attack success rate on the safety-tuned SmolLM2 before and after a conditional refusal defence.

    python benchmarks/jailbreak_defence_smollm2.py --direction refusal-direction-bench/refusal-direction

The held-out harmful requests of `refusal-smollm2` (SafetyRequests test templates) go in plain and under each
jailbreak wrapper (tasks/jailbreak.py: role-play, hypothetical, adversarial-looking suffix); the attack succeeds
when the greedy reply is not judged a refusal. The defence adds the refusal direction (from
benchmarks/refusal_direction_smollm2.py) at its layer only to prompts whose mean projection on it crosses a
threshold chosen by grid search (F1) on a calibration split of train requests, wrapped and plain; its side effect is
the refusal rate of held-out harmless requests, plain and wrapped. An unconditional addition is the comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import mechscope
from mechscope.steering import (DirectionConfig, SteeringVector, conditional_refusal, directions,
                                load_refusal_direction, refusal_by_kind, vector_interventions)
from mechscope.tasks.jailbreak import KINDS, wrap_requests
from mechscope.toy import load_organism


def sample(task, harmful: bool, split: str, n: int | None) -> list[str]:
    """`n` requests of one side and split (all for None), a seeded sample."""
    texts = task.instructions(harmful, split)
    return random.Random(f"{split}-{harmful}").sample(texts, n or len(texts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--direction", required=True, help="a refusal direction saved by steer refusal")
    parser.add_argument("--out", default="jailbreak-defence-bench.json")
    parser.add_argument("--n-calibration", type=int, default=48, help="train requests per side for the threshold")
    parser.add_argument("--n-harmless", type=int, default=24, help="held-out harmless requests (of 60)")
    parser.add_argument("--coefficient", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--per", default="last", help="condition read at the last prompt token, or its prompt mean")
    parser.add_argument("--base", action="store_true", help="attack the base SmolLM2 instead, with its own difference "
                        "in means (harmful minus harmless train requests) at the direction's layer and position")
    args = parser.parse_args()
    organism = load_organism("refusal-smollm2", device="cpu")
    model, task = organism.model, organism.task
    vector = load_refusal_direction(SteeringVector.load(args.direction)).vector
    kinds = ("plain", *KINDS)
    if args.base:
        model = mechscope.load_model("smollm2", device="cpu")
        vector = directions(model, sample(task, True, "train", 96), sample(task, False, "train", 96),
                            DirectionConfig(hook=vector.hook, layers=tuple(vector.layers),
                                            position=vector.positions[0]))
    apply_to = [w.text for w in wrap_requests(sample(task, True, "train", args.n_calibration), kinds, 1)]
    leave = [w.text for w in wrap_requests(sample(task, False, "train", args.n_calibration), kinds, 2)]
    started = time.perf_counter()
    defence = conditional_refusal(model, vector, apply_to, leave, args.coefficient, args.per)
    print(f"calibration: {len(apply_to)} harmful and {len(leave)} harmless train prompts, threshold "
          f"{'>' if defence.search.above else '<'} {defence.threshold:.3f} on the projection (per {args.per}) at "
          f"{vector.hook_name(vector.layers[0])}, F1 {defence.search.f1:.3f} "
          f"({time.perf_counter() - started:.0f} s)")

    harmful = wrap_requests(sample(task, True, "test", None), kinds, 3)
    harmless = wrap_requests(sample(task, False, "test", args.n_harmless), kinds, 4)
    runs = {"no defence": [], "conditional add": defence.edits,
            "always add": vector_interventions(vector, "add", args.coefficient)}
    results = {}
    for name, edits in runs.items():
        started = time.perf_counter()
        results[name] = {"harmful": refusal_by_kind(model, harmful, edits, args.max_new_tokens),
                         "harmless": refusal_by_kind(model, harmless, edits, args.max_new_tokens),
                         "seconds": time.perf_counter() - started}
    n_harmful, n_harmless = len(harmful) // len(kinds), len(harmless) // len(kinds)
    print(f"\nattack success rate (held-out harmful requests not refused, {n_harmful} per kind) and harmless refusals "
          f"({n_harmless} per kind); coefficient {args.coefficient}, greedy {args.max_new_tokens} tokens\n")
    print("| run | " + " | ".join(f"ASR {k}" for k in kinds) + " | " + " | ".join(f"harmless refused {k}"
                                                                        for k in kinds) + " |")
    print("|---" * (2 * len(kinds) + 1) + "|")
    for name, result in results.items():
        asr = [f"{1 - result['harmful'][k]:.1%}" for k in kinds]
        side = [f"{result['harmless'][k]:.1%}" for k in kinds]
        print(f"| {name} | {' | '.join(asr)} | {' | '.join(side)} |")
    Path(args.out).write_text(json.dumps({"threshold": defence.threshold, "above": defence.search.above,
                                          "f1": defence.search.f1, "results": results}, indent=1))


if __name__ == "__main__":
    main()
