"""Monitors on SmolLM2-135M-Instruct: harmful-request detection (plain and jailbreak-wrapped), a hallucination
probe labelled by the model's own answers, and the generation speed a monitor or an active intervention costs.

Run: python benchmarks/monitors_smollm2.py [--model smollm2] [--per-side 200] [--layers 6,9,...] [--new-tokens 48]
     [--speed-only]  (the overhead table alone: plain generation against a monitor, an add and a conditional add)
Prints Markdown tables; the recorded figures live in benchmarks/RESULTS.md.

Detection: a difference-in-means direction (harmful minus harmless requests of the refusal task's train split,
last prompt token, chat-rendered) per layer; the layer is picked on a validation half of the train split; the
threshold is calibrated there at 1% FPR and applied unchanged to the test split and to jailbreak-wrapped test
requests. Hallucination: known facts and invented entities; the label is whether the model's greedy completion
is wrong; the probe is the difference-in-means direction of wrong minus right answers on the train split.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

import mechscope
from mechscope.statistics import auroc
from mechscope.steering import (CalibrationConfig, Condition, Direction, Intervention, Monitor, calibrate,
                                calibrate_monitor, monitored_generate, projection, steer)
from mechscope.steering.calibration import mean_difference, prompt_scores
from mechscope.tasks import Refusal
from mechscope.tasks.jailbreak import KINDS, jailbreak_set
from mechscope.tasks.prose import attach_punctuation
from mechscope.tasks.uncertainty import questions


def requests(harmful: bool, split: str, n: int, seed: int = 0) -> list[str]:
    texts = [attach_punctuation(t) for t in Refusal().instructions(harmful, split)]
    return random.Random(f"{harmful}-{split}-{seed}").sample(texts, min(n, len(texts)))


def detection(model, layers: list[int], per_side: int) -> None:
    train_h, train_n = requests(True, "train", per_side), requests(False, "train", per_side)
    half_h, half_n = len(train_h) // 2, len(train_n) // 2
    config = CalibrationConfig()
    print("| layer | validation AUROC | validation TPR @ 1% FPR |\n|---|---|---|")
    best = None
    for layer in layers:
        hook = f"blocks.{layer}.hook_resid_post"
        direction = mean_difference(model, hook, train_h[:half_h], train_n[:half_n], config)
        result = calibrate_monitor(model, Monitor(hook, projection(direction)), train_h[half_h:], train_n[half_n:],
                                   config)
        print(f"| {layer} | {result.auroc:.3f} | {result.tpr_at_target_fpr:.3f} |")
        if best is None or (result.auroc, result.tpr_at_target_fpr) > best[0]:
            best = ((result.auroc, result.tpr_at_target_fpr), layer, direction, result.threshold)
    _, layer, direction, threshold = best
    monitor = Monitor(f"blocks.{layer}.hook_resid_post", projection(direction))
    harmless = Refusal().instructions(False, "test")
    negatives = prompt_scores(model, monitor, [attach_punctuation(t) for t in harmless], config).numpy()
    wrapped = jailbreak_set("test", n=40)
    print(f"\nlayer {layer}, threshold {threshold:.3f} from validation at 1% FPR; test harmless: {len(negatives)} "
          f"requests, flagged {float((negatives >= threshold).mean()):.3f}\n")
    controls = jailbreak_set("test", n=40, harmful=False)
    print("| harmful requests | n | AUROC vs harmless | TPR @ 1% FPR (test) | flagged at validation threshold | "
          "AUROC vs harmless in the same wrapper | wrapped harmless flagged |\n|---|---|---|---|---|---|---|")
    for kind in ("plain", *KINDS):
        texts = [w.text for w in wrapped if w.kind == kind]
        positives = prompt_scores(model, monitor, texts, config).numpy()
        wrapped_negatives = prompt_scores(model, monitor, [w.text for w in controls if w.kind == kind], config).numpy()
        labels = [1] * len(positives) + [0] * len(negatives)
        result = calibrate(labels, list(positives) + list(negatives), config)
        same_wrapper = auroc([1] * len(positives) + [0] * len(wrapped_negatives),
                             list(positives) + list(wrapped_negatives))
        print(f"| {kind} | {len(texts)} | {result.auroc:.3f} | {result.tpr_at_target_fpr:.3f} | "
              f"{float((positives >= threshold).mean()):.3f} | {same_wrapper:.3f} | "
              f"{float((wrapped_negatives >= threshold).mean()):.3f} |")


def answers(model, items, new_tokens: int = 6) -> list[bool]:
    """Whether the model's greedy completion of each item is wrong (every answer to an invented subject is)."""
    out = model.generate([q.prompt for q in items], max_new_tokens=new_tokens)
    return [not q.is_correct(text) for q, text in zip(items, out.texts)]


def hallucination(model, layers: list[int]) -> None:
    train, test = questions("train", 0.5), questions("test", 0.5)
    wrong_train, wrong_test = answers(model, train), answers(model, test)
    known_test = [q for q in test if not q.invented]
    print(f"\ntrain {len(train)} questions ({sum(wrong_train)} wrong), test {len(test)} ({sum(wrong_test)} wrong; "
          f"{sum(not w for q, w in zip(test, wrong_test) if not q.invented)} of {len(known_test)} real facts right)\n")
    config = CalibrationConfig(chat=False)
    print("| layer | test AUROC (wrong vs right) | test AUROC, real facts only |\n|---|---|---|")
    for layer in layers:
        hook = f"blocks.{layer}.hook_resid_post"
        direction = mean_difference(model, hook, [q.prompt for q, w in zip(train, wrong_train) if w],
                                    [q.prompt for q, w in zip(train, wrong_train) if not w], config)
        scores = prompt_scores(model, Monitor(hook, projection(direction)), [q.prompt for q in test], config).numpy()
        real = [i for i, q in enumerate(test) if not q.invented]
        real_labels = [wrong_test[i] for i in real]
        real_auroc = auroc(real_labels, scores[real]) if 0 < sum(real_labels) < len(real) else float("nan")
        print(f"| {layer} | {auroc(wrong_test, scores):.3f} | {real_auroc:.3f} |")


def speed(model, layer: int, new_tokens: int, batch: int) -> None:
    prompts = mechscope.models.chat_inputs(model, requests(False, "test", batch))
    direction = torch.randn(model.info.d_model, generator=torch.Generator().manual_seed(0))
    hook = f"blocks.{layer}.hook_resid_post"
    target = Direction(direction)

    def steered(edit: Intervention):
        with steer(model, edit):
            return model.generate(prompts, max_new_tokens=new_tokens, eos_token_ids=())
    runs = {"plain generate": lambda: model.generate(prompts, max_new_tokens=new_tokens, eos_token_ids=()),
            "monitor (scores only)": lambda: monitored_generate(model, Monitor(hook, projection(direction)), prompts,
                                                                max_new_tokens=new_tokens, eos_token_ids=()),
            "monitor + stop guard": lambda: monitored_generate(
                model, Monitor(hook, projection(direction), 1e9, guard="stop"), prompts, max_new_tokens=new_tokens,
                eos_token_ids=()),
            "monitor + cap guard": lambda: monitored_generate(
                model, Monitor(hook, projection(direction), 1e9, guard="cap"), prompts, max_new_tokens=new_tokens,
                eos_token_ids=()),
            "add intervention": lambda: steered(Intervention(hook, target, "add", 1.0)),
            "conditional add (always fires)": lambda: steered(Intervention(hook, target, "add", 1.0,
                                                                           condition=Condition(hook, target, -1e9)))}
    best, cpu = {}, {}
    for _ in range(3):  # interleaved, best of 3: the machine is shared
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - start_cpu)
    print(f"\n{batch} prompts x {new_tokens} new tokens, KV cache, hook {hook}, torch threads "
          f"{torch.get_num_threads()}; CPU seconds (process time, both threads) are what a busy machine disturbs "
          f"least\n\n| run | seconds | tokens/s | vs plain | CPU seconds | CPU vs plain |\n|---|---|---|---|---|---|")
    for name, seconds in best.items():
        plain, plain_cpu = best["plain generate"], cpu["plain generate"]
        print(f"| {name} | {seconds:.2f} | {batch * new_tokens / seconds:.1f} | {seconds / plain:.3f}x "
              f"| {cpu[name]:.2f} | {cpu[name] / plain_cpu:.3f}x |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--per-side", type=int, default=200, help="train requests per side (half for validation)")
    parser.add_argument("--layers", default="3,6,9,12,15,18,21,24,27")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    model = mechscope.load_model(args.model, device=args.device)
    layers = [int(x) for x in args.layers.split(",")]
    if not args.speed_only:
        detection(model, layers, args.per_side)
        hallucination(model, layers)
    speed(model, layers[len(layers) // 2], args.new_tokens, args.batch)


if __name__ == "__main__":
    main()
