"""The refusal direction of the safety-tuned SmolLM2 (`refusal-smollm2`): scored candidate table, ablation and
addition on held-out requests, harmless KL, and the weight-orthogonalised copy.

    python benchmarks/refusal_direction_smollm2.py --out refusal-direction-bench

Selects the direction (Arditi et al. 2024) from the organism's train requests (SafetyRequests train templates,
seeded train/validation split), prints the whole (layer x post-instruction position) table, then judges greedy
replies to the held-out templates' requests plain, ablated and added, and checks the orthogonalised copy (loaded
by plain transformers) against the hooked ablation. (benchmarks/refusal_smollm2.py builds the organism itself.)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

import mechscope
from mechscope.models import chat_inputs
from mechscope.steering import RefusalConfig, refusal_prompt_sets, save_orthogonalized, steer
from mechscope.steering.refusal import NoRefusalCandidate, drop_reason, score_refusal_candidates
from mechscope.steering.refusal_effect import harmless_kl, refusal_effect, refusal_rates
from mechscope.toy import load_organism


def grid(table: list[dict], key: str, fmt: str) -> str:
    """One markdown row per layer, one column per position, `key` of each candidate (x: dropped)."""
    positions = sorted({row["position"] for row in table})
    cells = {(row["layer"], row["position"]): row for row in table}
    lines = [f"| layer | {' | '.join(str(p) for p in positions)} |", "|---" * (len(positions) + 1) + "|"]
    for layer in sorted({row["layer"] for row in table}):
        values = []
        for position in positions:
            row = cells[layer, position]
            values.append(format(row[key], fmt) + ("" if row["dropped"] is None else " x"))
        lines.append(f"| {layer} | {' | '.join(values)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="refusal-direction-bench")
    parser.add_argument("--n-train", type=int, default=96, help="train requests per side")
    parser.add_argument("--n-val", type=int, default=16, help="validation requests per side")
    parser.add_argument("--layers", default="0,2,4,6,8,10,12,14,16,18,20,22,24",
                        help="candidate layers (the last 20%% are listed, unscored); all 30 take ~2.5x longer")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()} torch {torch.__version__}, {torch.get_num_threads()} threads")
    organism = load_organism("refusal-smollm2", device="cpu")
    model, task = organism.model, organism.task
    sets = refusal_prompt_sets(args.n_train, args.n_val, args.seed, task=task)
    started = time.perf_counter()
    config = RefusalConfig(layers=tuple(int(x) for x in args.layers.split(",")))
    scored = score_refusal_candidates(model, sets["harmful"], sets["harmless"], sets["harmful_val"],
                                      sets["harmless_val"], config=config, progress=True)
    selection_s = time.perf_counter() - started
    (out / "candidates.json").write_text(json.dumps({"baseline": scored.baseline, "table": scored.table}, indent=1))
    for criteria in (config, replace(config, kl_threshold=float("inf")),
                     replace(config, kl_threshold=float("inf"), induce_refusal_threshold=float("-inf"))):
        try:
            refusal = scored.select(model, criteria)
            break
        except NoRefusalCandidate as err:
            print(f"\nno candidate under kl_threshold={criteria.kl_threshold}, induce_refusal_threshold="
                  f"{criteria.induce_refusal_threshold}: {str(err).split(';')[0]}")
    print(f"\nselected under kl_threshold={criteria.kl_threshold}, "
          f"induce_refusal_threshold={criteria.induce_refusal_threshold}")
    kept = [row for row in refusal.table if row["dropped"] is None]
    print(f"\nselection: {len(refusal.table)} candidates, {len(kept)} kept, {selection_s:.0f} s; baseline "
          f"{refusal.baseline}; selected layer {refusal.layer} position {refusal.position}: "
          f"{ {k: round(v, 3) if isinstance(v, float) else v for k, v in refusal.vector.metrics['selected'].items()} }")
    for key, fmt, what in (("refusal_score", "+.2f", "harmful refusal score, direction ablated"),
                           ("steering_score", "+.2f", "harmless refusal score, direction added"),
                           ("kl", ".3f", "harmless KL of the ablation")):
        print(f"\n{what} (x: dropped)\n\n{grid(refusal.table, key, fmt)}")
    for label, criteria_used in (("paper criteria", config), ("criteria used", criteria)):
        drops: dict[str, int] = {}
        for row in scored.table:
            reason = drop_reason(row, model.n_layers, criteria_used) or "kept"
            drops[reason] = drops.get(reason, 0) + 1
        print(f"\n{label}: {drops}")

    harmful, harmless = task.instructions(True, "test"), task.instructions(False, "test")
    started = time.perf_counter()
    effect = refusal_effect(model, refusal, harmful, harmless, max_new_tokens=args.max_new_tokens)
    effect_s = time.perf_counter() - started
    print(f"\nheld-out: {len(harmful)} harmful, {len(harmless)} harmless, greedy {args.max_new_tokens} tokens "
          f"({effect_s:.0f} s)\n\n| model | harmful refused | harmless refused |\n|---|---|---|")
    for label, rates in (("plain", effect.plain), ("direction ablated", effect.ablated),
                         ("direction added (x1)", effect.added)):
        print(f"| {label} | {rates.harmful_rate:.1%} | {rates.harmless_rate:.1%} |")
    print(f"\nharmless KL of the ablation: mean {effect.harmless_kl:.4f}, max {max(effect.per_prompt_kl):.4f} nats")
    after = scored.layers[scored.layers.index(refusal.layer) + 1:][:1]  # the next scanned layer (may be pruned)
    variants = {f"affine at {refusal.layer}": [refusal.layer], f"affine at {refusal.layer}+{after}": [refusal.layer,
                                                                                                  *after]}
    print("\n| ablation (position -1) | harmful refused | harmless refused | harmless KL |\n|---|---|---|---|")
    print(f"| directional (selected) | {effect.ablated.harmful_rate:.1%} | {effect.ablated.harmless_rate:.1%} | "
          f"{effect.harmless_kl:.3f} |")
    affine = {}
    for name, layers in variants.items():
        edits = scored.affine_ablation(layers, refusal.position)
        rates = refusal_rates(model, harmful, harmless, edits, args.max_new_tokens)
        kl = float(harmless_kl(model, harmless, edits).mean())
        affine[name] = {**rates.to_dict(), "harmless_kl": kl, "replies": rates.harmful.replies}
        print(f"| {name} | {rates.harmful_rate:.1%} | {rates.harmless_rate:.1%} | {kl:.3f} |")

    direction = refusal.vector.direction(refusal.layer)
    saved = save_orthogonalized(model, direction, out / "orthogonalized")
    plain_hf = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32).eval()
    inputs = chat_inputs(model, harmful[:16] + harmless[:16])
    with steer(model, refusal.ablate(model)), torch.no_grad():
        hooked = model(inputs)
    with torch.no_grad():
        baked = plain_hf(**inputs).logits
    real = inputs["attention_mask"].bool()
    gap = (baked - hooked)[real].abs().max().item()
    edited = mechscope.load_model(saved, device="cpu")
    ortho = refusal_rates(edited, harmful, harmless, max_new_tokens=args.max_new_tokens)
    print(f"\northogonalised copy (plain transformers): max |logit - hooked ablation logit| = {gap:.2e} over "
          f"{int(real.sum())} tokens; refused: harmful {ortho.harmful_rate:.1%}, harmless {ortho.harmless_rate:.1%}")
    refusal.vector.save(out / "refusal-direction")
    (out / "refusal-direction.json").write_text(json.dumps(
        {"selection_seconds": selection_s, "selected": refusal.vector.metrics["selected"], "baseline": refusal.baseline,
         "table": refusal.table, "effect": effect.to_dict(), "affine": affine,
         "orthogonalized": {"max_logit_gap": gap, **ortho.to_dict()},
         "replies": {name: rates.harmful.replies + rates.harmless.replies
                     for name, rates in (("plain", effect.plain), ("ablated", effect.ablated),
                                         ("added", effect.added))}}, indent=1))


if __name__ == "__main__":
    main()
