"""CAA and ITI on SmolLM2-135M-Instruct: the CAA layer sweep for the refusal behaviour (A/B questions built from
the safety request set, letters alternating) and ITI's per-head probes on true/false capital-city statements.

    python benchmarks/caa_iti_smollm2.py

CAA: vectors from train-template questions at the answer letter, then P(refusal letter) on held-out-template
questions with coefficient x the vector added at one layer (every position). ITI: the held-out accuracy of the best
heads, and the truth margin (log P(true answer) - log P(a false one) at the answer token of held-out statements'
prompts) plain and with the top-K shifts at several alphas.
"""

from __future__ import annotations

import argparse
import random
import time

import mechscope
from mechscope.steering import CAAConfig, ITIConfig, caa, fit_iti, truth_margin
from mechscope.tasks.ab_choice import refusal_questions
from mechscope.tasks.uncertainty import statements
from mechscope.toy import load_organism


def sweep_caa(model, args) -> None:
    """The CAA table: vectors from train questions, the sweep on held-out ones."""
    train = random.Random(0).sample(refusal_questions("train"), args.n_train)
    test = refusal_questions("test")
    test = random.Random(1).sample(test, args.n_test) if args.n_test else test
    config = CAAConfig(layers=tuple(int(x) for x in args.layers.split(",")),
                       coefficients=tuple(float(x) for x in args.coefficients.split(",")))
    started = time.perf_counter()
    vector, sweep = caa(model, train, test, config)
    print(f"CAA: {len(train)} train / {len(test)} held-out refusal A/B questions, P(refusal letter) unsteered "
          f"{sweep.baseline:.3f} ({time.perf_counter() - started:.0f} s)\n")
    print("| layer | norm | " + " | ".join(f"P at {c:+g} (shift, moved)" for c in config.coefficients) + " |")
    print("|---" * (len(config.coefficients) + 2) + "|")
    for layer in vector.layers:
        cells = [row for row in sweep.rows if row["layer"] == layer]
        print(f"| {layer} | {vector.norms[layer]:.2f} | " + " | ".join(
            f"{row['p_behaviour']:.3f} ({row['shift']:+.3f}, {row['steered_fraction']:.0%})" for row in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=96, help="CAA train questions")
    parser.add_argument("--layers", default="0,3,6,9,12,15,18,21,24,27")
    parser.add_argument("--coefficients", default="-1,1")
    parser.add_argument("--n-test", type=int, default=None, help="held-out questions (default: all 108)")
    parser.add_argument("--model", default="smollm2", help='"smollm2", or "refusal-smollm2" for the zoo organism')
    parser.add_argument("--no-iti", action="store_true")
    parser.add_argument("--no-caa", action="store_true")
    args = parser.parse_args()
    model = (load_organism("refusal-smollm2", device="cpu").model if args.model == "refusal-smollm2"
             else mechscope.load_model(args.model, device="cpu"))
    if not args.no_caa:
        sweep_caa(model, args)
    if args.no_iti:
        return
    true, false = statements("train")
    test_true, test_false = statements("test")
    started = time.perf_counter()
    iti = fit_iti(model, true, false, ITIConfig(top_k=16))
    print(f"\nITI: {len(true)} true / {len(false)} false train statements (20% held out for head ranking), "
          f"{iti.accuracy.numel()} heads probed ({time.perf_counter() - started:.0f} s); held-out accuracy: best "
          f"{iti.heads[0].accuracy:.3f}, 16th {iti.heads[-1].accuracy:.3f}, median of all "
          f"{float(iti.accuracy.median()):.3f}; top heads {[(h.layer, h.head) for h in iti.heads[:8]]}")
    print(f"\n| alpha | truth margin on {len(test_true)} held-out statements (nats) |\n|---|---|")
    for alpha in (0.0, 5.0, 15.0, 30.0):
        edits = iti.interventions(alpha) if alpha else ()
        print(f"| {alpha:g} | {truth_margin(model, test_true, test_false, edits):+.3f} |")


if __name__ == "__main__":
    main()
