"""CLI verbs for monitors: `mechscope monitor calibrate` (direction + threshold into a control vector GGUF) and
`mechscope monitor run` (generation with that monitor: per-token scores, alerts, guards), `mechscope monitor
fingerprint` (the latents that fire on jailbreak wrappers)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from mechscope.cli.arguments import bound_dictionary, leaf, write_json
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.errors import MechscopeError
from mechscope.models.generation import GenerationConfig
from mechscope.steering.calibration import CalibrationConfig
from mechscope.steering.fingerprint import FingerprintConfig
from mechscope.steering.monitors import Monitor


def _lines(path: str) -> list[str]:
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines:
        raise MechscopeError(f"{path} holds no prompts; expected one prompt per line")
    return lines


def _prompt_sets(args: argparse.Namespace) -> dict[str, tuple[list[str], list[str]]]:
    """{"train": (positives, negatives), "test": (...)}: the refusal task's harmful/harmless requests by default,
    else the two files split in halves by a stable hash."""
    from mechscope.tasks import Refusal
    from mechscope.tasks.prose import attach_punctuation
    from mechscope.tasks.splits import split_items

    if (args.positives is None) != (args.negatives is None):
        raise MechscopeError("give both --positives and --negatives (one prompt per line), or neither for the "
                             "refusal task's harmful and harmless requests")
    if args.positives is None:
        task = Refusal()
        return {split: tuple([attach_punctuation(t) for t in task.instructions(harmful, split)]
                             for harmful in (True, False)) for split in ("train", "test")}
    halves = [split_items(_lines(path), str, 0.5) for path in (args.positives, args.negatives)]
    return {split: (halves[0][split], halves[1][split]) for split in ("train", "test")}


def calibrate(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering.calibration import calibrate_monitor, mean_difference
    from mechscope.steering.exchange import read_control_vector, write_control_vector
    from mechscope.steering.monitors import projection

    config = CalibrationConfig(**config_options(args, CalibrationConfig))
    model = load_model(args.model, device=args.device)
    hook = f"blocks.{args.layer}.hook_resid_post"
    prompts = _prompt_sets(args)
    if args.direction is not None:
        directions = read_control_vector(args.direction).directions
        if args.layer not in directions:
            raise MechscopeError(f"{args.direction} has directions for layers {sorted(directions)}, not {args.layer}")
        direction = directions[args.layer]
    else:
        direction = mean_difference(model, hook, *prompts["train"], config)
    result = calibrate_monitor(model, Monitor(hook, projection(direction)), *prompts["test"], config)
    monitor = {"layer": args.layer, "hook": hook, "score": "projection on the unit direction",
               "threshold": result.threshold, "calibration": result.to_dict(), "config": asdict(config)}
    path = write_control_vector(args.out, {args.layer: direction}, model.info.model_type,
                                {"monitor": monitor, "model": model.describe()})
    return {**result.to_dict(), "layer": args.layer, "file": str(path)}


def run(args: argparse.Namespace) -> dict:
    from mechscope.models import chat_inputs, load_model
    from mechscope.steering.exchange import read_control_vector
    from mechscope.steering.monitors import monitored_generate, projection

    vector = read_control_vector(args.monitor)
    saved = vector.metadata.get("monitor")
    if saved is None:
        raise MechscopeError(f"{args.monitor} is a control vector without a calibrated monitor; make one with "
                             f"`mechscope monitor calibrate`")
    options = config_options(args, Monitor, skip=("hook", "score"))
    options["threshold"] = saved["threshold"] if options.get("threshold") is None else options["threshold"]
    monitor = Monitor(saved["hook"], projection(vector.directions[saved["layer"]]), **options)
    model = load_model(args.model, device=args.device)
    inputs = chat_inputs(model, args.prompts) if args.chat else args.prompts
    settings = config_options(args, GenerationConfig)
    out = monitored_generate(model, monitor, inputs, **settings)
    rows = []
    for row, (prompt, text) in enumerate(zip(args.prompts, out.generation.texts)):
        start = out.generation.prompt_lengths[row]
        alert = next((a for a in out.record.alerts if a.row == row), None)
        rows.append({"prompt": prompt, "text": text, "finish_reason": out.generation.finish_reasons[row],
                     "alert": None if alert is None else {"position": alert.position, "score": round(alert.score, 4),
                                                          "in_prompt": alert.position < start},
                     "prompt_last_score": round(float(out.record.scores[row][start - 1]), 4),
                     "new_token_scores": [round(float(s), 4) for s in out.record.scores[row][start:]]})
    return {"threshold": monitor.threshold, "guard": monitor.guard, "rows": rows}


def fingerprint(args: argparse.Namespace) -> dict:
    from mechscope.steering.fingerprint import jailbreak_fingerprint

    config = FingerprintConfig(**config_options(args, FingerprintConfig))
    with bound_dictionary(args) as (model, bound, catalog):
        result = jailbreak_fingerprint(model, bound, config, catalog)
    write_json(args.out, result)
    return {"out": args.out, "hook": result["hook"], "n": result["n"],
            "kinds": {kind: [(e["latent"], round(e["auroc"], 3), e["label"]) for e in entries[:5]]
                      for kind, entries in result["kinds"].items()}}


def register(verbs) -> None:
    group = verbs.add_parser("monitor", help="per-token monitors: calibrate a direction, run generation with it")
    actions = group.add_subparsers(dest="action", required=True)

    p = leaf(actions, "calibrate", calibrate, "difference-in-means direction (or --direction), its AUROC, TPR at "
             "the target FPR and threshold on held-out prompts; written as a control vector GGUF")
    p.add_argument("model", help='"smollm2", an organism directory, a local HF directory or a hub id')
    p.add_argument("--layer", type=int, required=True, help="read blocks.LAYER.hook_resid_post")
    p.add_argument("--out", required=True, help="the monitor file to write (.gguf)")
    p.add_argument("--direction", help="a control vector GGUF to calibrate instead of a difference of means")
    p.add_argument("--positives", help="prompts that should score high, one per line (default: harmful requests)")
    p.add_argument("--negatives", help="prompts that should score low, one per line (default: harmless requests)")
    p.add_argument("--device", default="auto")
    add_config_flags(p, CalibrationConfig)

    p = leaf(actions, "fingerprint", fingerprint, "the dictionary latents that fire on jailbreak wrappers (role-play, "
             "hypothetical, suffixes) and not on the same requests asked plainly, per wrapper kind")
    p.add_argument("model")
    p.add_argument("--dictionary", required=True, help="the dictionary directory (any supported format)")
    p.add_argument("--catalog", help="its feature catalogue, for the latents' labels")
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--device", default="auto")
    add_config_flags(p, FingerprintConfig)

    p = leaf(actions, "run", run, "generate with a calibrated monitor: per-token scores, alerts and guards")
    p.add_argument("model")
    p.add_argument("monitor", help="a file written by `mechscope monitor calibrate`")
    p.add_argument("prompts", nargs="+")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=True,
                   help="render each prompt as a user turn with the model's chat template")
    p.add_argument("--device", default="auto")
    add_config_flags(p, Monitor, skip=("hook", "score"))
    add_config_flags(p, GenerationConfig, only=("max_new_tokens", "temperature", "seed"))
