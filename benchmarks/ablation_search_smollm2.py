"""The Heretic-style ablation search on the safety-tuned SmolLM2 (`refusal-smollm2`): Optuna TPE over a layer-varying
ablation of the refusal directions, then the chosen trial's refusal rates by generation on the held-out templates,
beside the plain model and plain directional ablation of the best single direction.

    python benchmarks/ablation_search_smollm2.py [--trials 60]
"""

from __future__ import annotations

import argparse
import time

from mechscope.steering import (AblationSearchConfig, DirectionConfig, directional_ablation, directions,
                                search_ablation)
from mechscope.steering.refusal import refusal_prompt_sets
from mechscope.steering.refusal_effect import harmless_kl, refusal_rates
from mechscope.tasks import SafetyRequests
from mechscope.toy import load_organism


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--startup-trials", type=int, default=20)
    args = parser.parse_args()
    model = load_organism("refusal-smollm2", device="cpu").model
    task = SafetyRequests()
    sets = refusal_prompt_sets(64, 32, 0, task=task)
    vector = directions(model, sets["harmful"], sets["harmless"], DirectionConfig())
    config = AblationSearchConfig(trials=args.trials, startup_trials=args.startup_trials, layer_range=(0.2, 0.9))
    started = time.perf_counter()
    result = search_ablation(model, vector, sets["harmful_val"], sets["harmless_val"], config)
    seconds = time.perf_counter() - started
    print(f"{args.trials} trials in {seconds:.0f} s ({seconds / args.trials:.1f} s each); validation first-token "
          f"refusals plain {result.baseline['refusals']:.2f}")
    print("Pareto front (validation, first-token proxy): " + ", ".join(
        f"#{n} refusals {result.trials[n]['refusals']:.2f} KL {result.trials[n]['kl']:.3f}" for n in result.pareto))
    print(f"chosen #{result.chosen}: {result.best['params']}")
    harmful, harmless = task.instructions(True, "test"), task.instructions(False, "test")
    best_layer = max(vector.layers, key=lambda layer: vector.metrics["separation"][layer])
    settings = {"plain": (), "directional ablation (layer %d)" % best_layer:
                directional_ablation(model, vector.direction(best_layer)),
                "searched ablation": result.edits(vector, model.n_layers)}
    print(f"\nheld-out by generation ({len(harmful)} harmful, {len(harmless)} harmless requests):")
    print("| setting | harmful refused | harmless refused | harmless KL (nats) |\n|---|---|---|---|")
    for name, edits in settings.items():
        rates = refusal_rates(model, harmful, harmless, edits)
        kl = float(harmless_kl(model, harmless, edits).mean()) if edits else 0.0
        print(f"| {name} | {rates.harmful_rate:.1%} | {rates.harmless_rate:.1%} | {kl:.3f} |")
    result.save("ablation-search-smollm2.json")


if __name__ == "__main__":
    main()
