"""Train every model organism at a given size and record wall time and behavioural-check figures.

    python benchmarks/organisms.py --size default --out organisms-bench

Each organism trains from scratch (not from the zoo cache) into OUT/<name>; the table printed at the
end is what benchmarks/RESULTS.md records, and OUT/organisms.json holds the full manifests.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from mechscope.toy import ORGANISMS, train_organism

HEADLINE = {"induction": ("induction_score", "previous_token_score", "first_half_loss", "repeated_half_loss"),
            "ioi": ("accuracy", "logit_diff"),
            "refusal": ("harmful_refusal_rate", "harmless_refusal_rate"),
            "greater-than": ("prob_diff", "valid_top_year")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="default")
    parser.add_argument("--out", default="organisms-bench")
    parser.add_argument("--names", default=",".join(ORGANISMS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    print(f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows, manifests = [], {}
    for name in args.names.split(","):
        shutil.rmtree(out / name, ignore_errors=True)
        started = time.perf_counter()
        organism = train_organism(name, out / name, size=args.size, seed=args.seed, device="cpu", progress=False)
        total = time.perf_counter() - started
        m = organism.manifest
        figures = ", ".join(f"{k} {m['check'][k]:.3f}" for k in HEADLINE[name])
        model = m["model"]
        shape = f"{model['n_layers']}L d{model['d_model']} {model['n_heads']}h mlp{model['d_mlp']}"
        rows.append(f"| {name} | {shape} | {m['steps']} x {m['train']['batch_size']} | {m['train_seconds']:.1f} | "
                    f"{total:.1f} | {figures} | {'yes' if m['check']['passed'] else 'NO'} |")
        manifests[name] = m
        print(rows[-1], flush=True)
    print("\n| organism | model | steps x batch | train s | total s (incl. check, save) | check | passed |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    (out / "organisms.json").write_text(json.dumps(manifests, indent=2))


if __name__ == "__main__":
    main()
