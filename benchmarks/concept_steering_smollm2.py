"""Golden Gate-style latent steering on SmolLM2-135M-Instruct, measured offline (AxBench-style).

    python benchmarks/concept_steering_smollm2.py [--demo mechscope-demo] [--latents 37,35,42] [--values 2,5,10]

Uses the demo's TopK SAE at blocks.15.hook_resid_post and its labelled catalogue (run `make demo` first): each
latent is clamped at every position to a multiple of its maximum activation while SmolLM2 answers 12 neutral
prompts; the rows give MiniLM similarity of the answers to the latent's label (and its gain over unsteered), the
unsteered model's NLL of the answers (nats/token) and their distinct-bigram share, with the prompting baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mechscope
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.features import Catalog
from mechscope.steering import ConceptConfig, concept_steering, latent_concept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", default="mechscope-demo")
    parser.add_argument("--latents", default=None, help="default: the three best-scored labelled latents")
    parser.add_argument("--values", default="2,5,10")
    args = parser.parse_args()
    demo = Path(args.demo)
    model = mechscope.load_model("smollm2", device="cpu")
    bound = bind_dictionary(model, demo / "saes" / "topk_2304_k32")
    catalog = Catalog(demo / "features")
    latents = ([int(x) for x in args.latents.split(",")] if args.latents
               else [info.latent for info in catalog.list(order_by="score", limit=3)])
    config = ConceptConfig(values=tuple(float(x) for x in args.values.split(",")))
    for latent in latents:
        target, label, maximum = latent_concept(bound, latent, catalog)
        started = time.perf_counter()
        result = concept_steering(model, bound.hook, target, label, config, maximum)
        print(f"\nlatent {latent} {label!r} (max activation {maximum:.2f}; {time.perf_counter() - started:.0f} s)")
        print("| setting | value | similarity | gain | NLL (nats/token) | distinct bigrams | first answer |")
        print("|---|---|---|---|---|---|---|")
        for row in result.rows:
            example = row["examples"][0].replace("\n", " ")[:70]
            print(f"| {row['setting']} | {row['value'] if row['value'] is not None else ''} | {row['similarity']:.3f} "
                  f"| {row['gain']:+.3f} | {row['nll']:.2f} | {row['distinct2']:.2f} | {example!r} |")
    catalog.close()


if __name__ == "__main__":
    main()
