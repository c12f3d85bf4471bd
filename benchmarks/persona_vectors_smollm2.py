"""Persona vectors (Chen et al. 2025) on SmolLM2-135M-Instruct with the offline MiniLM judge.

    python benchmarks/persona_vectors_smollm2.py [--trait optimistic] [--layers 0,3,...]

Extraction: the trait's 8 extraction questions under its 5 eliciting and 5 suppressing system prompts, greedy
answers judged, kept by the 50 threshold, response-token mean difference per layer. Evaluation on the 8 held-out
questions: Pearson r between the last prompt token's projection and the judged score (2 system-prompt pairs plus
the default system prompt), and the judged score with the best-r layer's vector added at each coefficient.
"""

from __future__ import annotations

import argparse
import time

import mechscope
from mechscope.steering import TRAITS, EmbeddingJudge, PersonaConfig, evaluate_persona, persona_vector


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trait", default="optimistic", choices=sorted(TRAITS))
    parser.add_argument("--layers", default="0,3,6,9,12,15,18,21,24,27")
    parser.add_argument("--coefficients", default="-4,-2,2,4")
    args = parser.parse_args()
    model = mechscope.load_model("smollm2", device="cpu")
    config = PersonaConfig(layers=tuple(int(x) for x in args.layers.split(",")),
                           coefficients=tuple(float(x) for x in args.coefficients.split(",")))
    judge, trait = EmbeddingJudge(), TRAITS[args.trait]
    started = time.perf_counter()
    persona = persona_vector(model, trait, judge, config)
    extracted = time.perf_counter() - started
    evaluation = evaluate_persona(model, persona, trait, judge, config)
    metrics = persona.vector.metrics
    print(f"{args.trait}: {metrics['answers']} answers, kept {metrics['kept_positive']} eliciting / "
          f"{metrics['kept_negative']} suppressing; mean judged score eliciting {metrics['mean_score']['positive']:.1f}"
          f", suppressing {metrics['mean_score']['negative']:.1f} (extraction {extracted:.0f} s, evaluation "
          f"{time.perf_counter() - started - extracted:.0f} s)")
    print("held-out mean score by system prompt: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                                evaluation["mean_score_by_side"].items()))
    print("| layer | norm | Pearson r (last prompt token projection vs judged score) |\n|---|---|---|")
    for layer in persona.vector.layers:
        r = evaluation["pearson_r"][str(layer)]
        print(f"| {layer} | {persona.vector.norms[layer]:.2f} | {'n/a' if r is None else f'{r:+.2f}'} |")
    steering = evaluation["steering"]
    print(f"steering at layer {steering['layer']} (n={evaluation['n']} held-out rows for r): " + ", ".join(
        f"{c}: {v['mean_score']:.1f}" for c, v in steering["coefficients"].items()))
    for c, v in steering["coefficients"].items():
        print(f"  {c:>5}: {v['examples'][0]!r}")


if __name__ == "__main__":
    main()
