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
import time
from dataclasses import asdict
from pathlib import Path

import mechscope
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.steering import DirectionConfig, SteeringVector, directions, load_refusal_direction
from mechscope.steering.defence import DefenceConfig, jailbreak_defence
from mechscope.tasks.jailbreak import KINDS
from mechscope.toy import load_organism


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--direction", required=True, help="a refusal direction saved by steer refusal")
    parser.add_argument("--out", default="jailbreak-defence-bench.json")
    parser.add_argument("--base", action="store_true", help="attack the base SmolLM2 instead, with its own difference "
                        "in means (harmful minus harmless train requests) at the direction's layer and position")
    add_config_flags(parser, DefenceConfig)
    args = parser.parse_args()
    config = DefenceConfig(**config_options(args, DefenceConfig))
    organism = load_organism("refusal-smollm2", device="cpu")
    model, requests = organism.model, organism.task.requests
    vector = load_refusal_direction(SteeringVector.load(args.direction)).vector
    if args.base:
        model = mechscope.load_model("smollm2", device="cpu")
        vector = directions(model, requests.instructions(True, "train"), requests.instructions(False, "train"),
                            DirectionConfig(hook=vector.hook, layers=tuple(vector.layers),
                                            position=vector.positions[0]))
    started = time.perf_counter()
    report = jailbreak_defence(model, vector, requests, config)
    kinds = ("plain", *KINDS)
    print(f"{'base SmolLM2' if args.base else 'refusal-smollm2'}: threshold {'>' if report.above else '<'} "
          f"{report.threshold:.3f} on the projection (per {config.per}) at {vector.hook_name(vector.layers[0])}, "
          f"calibration F1 {report.f1:.3f}; coefficient {config.coefficient}, greedy {config.max_new_tokens} tokens "
          f"({time.perf_counter() - started:.0f} s)\n")
    print("| run | " + " | ".join(f"ASR {k}" for k in kinds) + " | " + " | ".join(f"harmless refused {k}"
                                                                        for k in kinds) + " |")
    print("|---" * (2 * len(kinds) + 1) + "|")
    for name, run in report.runs.items():
        asr = [f"{1 - run['harmful'][k]:.1%}" for k in kinds]
        side = [f"{run['harmless'][k]:.1%}" for k in kinds]
        print(f"| {name} | {' | '.join(asr)} | {' | '.join(side)} |")
    Path(args.out).write_text(json.dumps(asdict(report), indent=1))


if __name__ == "__main__":
    main()
