"""CLI verbs for model organisms: zoo list, zoo train, zoo check, zoo transcoders."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.toy.zoo_transcoders import OrganismTranscoderConfig


def zoo_list(args: argparse.Namespace) -> dict:
    from mechscope.toy import ORGANISMS
    from mechscope.toy.zoo import cached_organisms

    from mechscope.toy.organisms import FINE_TUNED

    cached = cached_organisms()
    return {"organisms": {name: {"description": spec.description, "sizes": sorted(spec.sizes),
                                 "default_steps": spec.sizes["default"].train.steps,
                                 "cached": [str(p) for p in cached[name]]}
                          for name, spec in ORGANISMS.items()},
            "fine_tuned": {name: {"description": spec.description, "base_model": spec.base_model,
                                  "sizes": sorted(spec.sizes), "default_steps": spec.sizes["default"].steps,
                                  "cached": [str(p) for p in cached[name]]}
                           for name, spec in FINE_TUNED.items()}}


def _summary(organism, check: dict) -> dict:
    manifest = organism.manifest
    return {"organism": organism.name, "path": str(organism.path), "size": manifest["size"],
            "steps": manifest["steps"], "train_seconds": manifest["train_seconds"], "check": check}


def zoo_train(args: argparse.Namespace) -> dict:
    from mechscope.toy import train_organism

    organism = train_organism(args.name, args.out, steps=args.steps, seed=args.seed, size=args.size,
                              device=args.device)
    return _summary(organism, organism.manifest["check"])


def zoo_check(args: argparse.Namespace) -> dict:
    from mechscope.toy import check_zoo, open_organism

    if args.dir is None:
        return {name: result.to_dict() for name, result in check_zoo(args.size, args.device).items()}
    organism = open_organism(args.dir, device=args.device)
    return _summary(organism, organism.check().to_dict())


def zoo_transcoders(args: argparse.Namespace) -> dict:
    import json

    from mechscope.toy import organism_transcoders_path

    config = OrganismTranscoderConfig(**config_options(args, OrganismTranscoderConfig))
    path = organism_transcoders_path(args.name, args.size, config)
    manifest = json.loads((path / "manifest.json").read_text())
    return {"organism": args.name, "size": args.size, "kind": config.kind, "path": str(path),
            "tokens_harvested": manifest["tokens_harvested"], "fvu_per_layer": manifest["fvu_per_layer"],
            "l0_per_layer": manifest["l0_per_layer"]}


def register(verbs) -> None:
    zoo = verbs.add_parser("zoo", help="model organisms: small LMs with known mechanisms").add_subparsers(
        dest="action", required=True)
    leaf(zoo, "list", zoo_list, "the organisms, their sizes and cached copies")

    p = leaf(zoo, "train", zoo_train, "train an organism into a new HF directory and run its check")
    p.add_argument("name", help="induction, ioi, refusal, greater-than or refusal-smollm2 (SmolLM2 fine-tuned to refuse)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, help="training steps (default: the size's own)")
    p.add_argument("--size", default="default", help="default or small (the test suite's quick variant)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")

    p = leaf(zoo, "check", zoo_check, "re-run the behavioural check of an organism directory, or of every "
             "organism in the zoo cache (each trained there on first use)")
    p.add_argument("dir", nargs="?", help="an organism directory (default: the whole zoo cache)")
    p.add_argument("--size", default="default", help="without DIR: which size of every organism")
    p.add_argument("--device", default="auto")

    p = leaf(zoo, "transcoders", zoo_transcoders, "an organism's per-layer transcoders (or CLT) from the zoo cache, "
             "trained there on first use; prints the directory (for `mechscope graph`) and each layer's FVU and L0")
    p.add_argument("name", help="an organism: induction, ioi, refusal or greater-than")
    p.add_argument("--size", default="default", help="default or small (the test suite's quick variant)")
    add_config_flags(p, OrganismTranscoderConfig)
