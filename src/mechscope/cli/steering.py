"""CLI verbs for steering: steer directions, refusal, generate, orthogonalize."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.errors import SteeringError
from mechscope.steering.apply import ApplyConfig
from mechscope.steering.directions import DirectionConfig
from mechscope.steering.refusal import RefusalConfig


def _lines(path: str) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines()]
    except OSError as err:
        raise SteeringError(f"expected a text file with one prompt per line at {path}: {err}") from err
    if not any(lines):
        raise SteeringError(f"{path} holds no prompts; expected one per line")
    return [line for line in lines if line]


def directions_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering import directions

    config = DirectionConfig(**config_options(args, DirectionConfig))
    model = load_model(args.model, device=args.device)
    vector = directions(model, _lines(args.positive), _lines(args.negative), config, progress=True)
    return {"vector": str(vector.save(args.out)), "layers": vector.layers,
            "norms": {layer: round(norm, 4) for layer, norm in vector.norms.items()},
            "separation": vector.metrics["separation"]}


def refusal_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering import select_refusal_direction
    from mechscope.steering.refusal import refusal_prompt_sets

    config = RefusalConfig(**config_options(args, RefusalConfig))
    model = load_model(args.model, device=args.device)
    sets = refusal_prompt_sets(args.n_train, args.n_val, args.seed)
    if args.harmful is not None:
        sets["harmful"], sets["harmful_val"] = _split(_lines(args.harmful), args.n_val)
    if args.harmless is not None:
        sets["harmless"], sets["harmless_val"] = _split(_lines(args.harmless), args.n_val)
    refusal = select_refusal_direction(model, sets["harmful"], sets["harmless"], sets["harmful_val"],
                                       sets["harmless_val"], config=config, progress=True)
    kept = [row for row in refusal.table if row["dropped"] is None]
    return {"vector": str(refusal.vector.save(args.out)), "selected": refusal.vector.metrics["selected"],
            "baseline": refusal.baseline, "candidates": len(refusal.table), "kept": len(kept)}


def _split(prompts: list[str], n_val: int) -> tuple[list[str], list[str]]:
    if len(prompts) <= n_val:
        raise SteeringError(f"expected more than --n-val={n_val} prompts in the file, got {len(prompts)}")
    return prompts[:-n_val], prompts[-n_val:]


def generate_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering import SteeringVector, steer
    from mechscope.steering.apply import vector_edits
    from mechscope.steering.directions import prompt_inputs

    config = ApplyConfig(**config_options(args, ApplyConfig))
    model = load_model(args.model, device=args.device)
    edits = vector_edits(model, SteeringVector.load(args.vector), config)
    inputs = prompt_inputs(model, args.prompt)
    settings = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    plain = model.generate(inputs, **settings).texts
    with steer(model, edits):
        steered = model.generate(inputs, **settings).texts
    return {"prompts": args.prompt, "plain": plain, "steered": steered}


def orthogonalize_verb(args: argparse.Namespace) -> dict:
    from mechscope.manifest import input_record
    from mechscope.models import load_model
    from mechscope.steering import SteeringVector, save_orthogonalized

    vector = SteeringVector.load(args.vector)
    layer = args.layer if args.layer is not None else vector.layers[0]
    model = load_model(args.model, device=args.device)
    vector.check(model)
    out = save_orthogonalized(model, vector.direction(layer), args.out,
                              source={"vector": input_record(args.vector), "layer": layer})
    return {"model": str(out), "layer": layer}


def register(verbs) -> None:
    steer = verbs.add_parser("steer", help="steering: directions, the refusal direction, steered generation, "
                             "weight orthogonalisation").add_subparsers(dest="action", required=True)

    p = leaf(steer, "directions", directions_verb, "one direction per layer from two prompt files (one per line)")
    p.add_argument("model", help='"smollm2", an organism directory, a local HF directory or a hub id')
    p.add_argument("--positive", required=True, help="prompts with the behaviour, one per line")
    p.add_argument("--negative", required=True, help="prompts without it, one per line")
    p.add_argument("--out", required=True, help="directory for vectors.safetensors and manifest.json")
    p.add_argument("--device", default="auto")
    add_config_flags(p, DirectionConfig)

    p = leaf(steer, "refusal", refusal_verb, "select the refusal direction (Arditi et al. 2024) and save it with "
             "the scored table of every candidate")
    p.add_argument("model")
    p.add_argument("--out", required=True)
    p.add_argument("--harmful", help="harmful instructions, one per line (default: the refusal task's)")
    p.add_argument("--harmless", help="harmless instructions, one per line (default: the refusal task's)")
    p.add_argument("--n-train", type=int, default=128, help="train instructions per side from the refusal task")
    p.add_argument("--n-val", type=int, default=32, help="validation instructions per side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_config_flags(p, RefusalConfig)

    p = leaf(steer, "generate", generate_verb, "generate with and without a saved vector applied")
    p.add_argument("model")
    p.add_argument("vector", help="a directory written by steer directions or steer refusal")
    p.add_argument("--prompt", action="append", required=True, help="a user message (repeat for several)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_config_flags(p, ApplyConfig)

    p = leaf(steer, "orthogonalize", orthogonalize_verb, "bake directional ablation of a vector's direction into a "
             "copy of the model, saved as a plain HF directory")
    p.add_argument("model")
    p.add_argument("vector")
    p.add_argument("--out", required=True)
    p.add_argument("--layer", type=int, help="which layer's direction (default: the vector's first)")
    p.add_argument("--device", default="auto")
