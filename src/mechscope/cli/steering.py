"""CLI verbs for steering: steer directions, refusal, caa, iti, persona, concept, search, defend, generate, orthogonalize."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechscope.cli.arguments import bound_dictionary, leaf, write_json
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.errors import SteeringError
from mechscope.steering.ablation_search import AblationSearchConfig
from mechscope.steering.apply import ApplyConfig
from mechscope.steering.caa import CAAConfig
from mechscope.steering.concept import ConceptConfig
from mechscope.steering.defence import DefenceConfig
from mechscope.steering.directions import DirectionConfig
from mechscope.steering.iti import ITIConfig
from mechscope.steering.persona import PersonaConfig
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
    from mechscope.tasks import SafetyRequests

    sets = refusal_prompt_sets(args.n_train, args.n_val, args.seed,
                               task=SafetyRequests() if args.requests == "safety" else None)
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


def _questions(path: str):
    import json

    from mechscope.tasks.ab_choice import ABQuestion

    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        return [ABQuestion(**row) for row in rows]
    except (OSError, ValueError, TypeError) as err:
        raise SteeringError(f"expected a JSONL file of A/B questions ({{\"question\", \"behaviour\", \"other\", "
                            f"\"behaviour_letter\"}} per line) at {path}: {err}") from err


def caa_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering.caa import caa
    from mechscope.tasks.ab_choice import refusal_questions

    config = CAAConfig(**config_options(args, CAAConfig))
    model = load_model(args.model, device=args.device)
    if args.questions is None:
        train, test = refusal_questions("train"), refusal_questions("test")
    else:
        questions = _questions(args.questions)
        train, test = _split(questions, max(1, len(questions) // 5))
    vector, sweep = caa(model, train, test, config, progress=True)
    return {"vector": str(vector.save(args.out)), "n_train": len(train), "n_test": len(test),
            "baseline": sweep.baseline, "best": vector.metrics["best"]}


def iti_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering.iti import bake_iti, fit_iti
    from mechscope.tasks.uncertainty import statements

    config = ITIConfig(**config_options(args, ITIConfig))
    model = load_model(args.model, device=args.device)
    true, false = (statements("train") if args.true is None or args.false is None
                   else (_lines(args.true), _lines(args.false)))
    iti = fit_iti(model, true, false, config, progress=True)
    result = {"iti": str(iti.save(args.out)),
              "heads": [{"layer": h.layer, "head": h.head, "accuracy": h.accuracy, "std": h.std} for h in iti.heads]}
    if args.bake is not None:
        baked = bake_iti(model, iti)
        baked.hf.save_pretrained(args.bake)
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(args.bake)
        result["baked"] = args.bake
    return result


def defend_verb(args: argparse.Namespace) -> dict:
    from dataclasses import asdict

    from mechscope.models import load_model
    from mechscope.steering import SteeringVector
    from mechscope.steering.defence import jailbreak_defence
    from mechscope.tasks import Refusal, SafetyRequests

    config = DefenceConfig(**config_options(args, DefenceConfig))
    model = load_model(args.model, device=args.device)
    requests = SafetyRequests() if args.requests == "safety" else Refusal()
    return asdict(jailbreak_defence(model, SteeringVector.load(args.vector).check(model), requests, config))


def persona_verb(args: argparse.Namespace) -> dict:
    from mechscope.autointerp.client import make_client
    from mechscope.models import load_model
    from mechscope.steering.persona import EmbeddingJudge, LLMJudge, evaluate_persona, persona_vector
    from mechscope.steering.traits import TRAITS, load_traits

    config = PersonaConfig(**config_options(args, PersonaConfig))
    traits = load_traits(args.traits) if args.traits else TRAITS
    if args.trait not in traits:
        raise SteeringError(f"unknown trait {args.trait!r}; expected one of {sorted(traits)} or a [trait.NAME] table "
                            f"in --traits FILE.toml")
    judge = EmbeddingJudge() if args.judge == "embedding" else LLMJudge(make_client(args.judge))
    model = load_model(args.model, device=args.device)
    persona = persona_vector(model, traits[args.trait], judge, config)
    if args.evaluate:
        evaluate_persona(model, persona, traits[args.trait], judge, config)
    return {"vector": str(persona.save(args.out)), **persona.vector.metrics, "evaluation": persona.evaluation}


def concept_verb(args: argparse.Namespace) -> dict:
    from mechscope.steering.concept import concept_steering, latent_concept

    config = ConceptConfig(**config_options(args, ConceptConfig))
    with bound_dictionary(args) as (model, bound, catalog):
        target, label, maximum = latent_concept(bound, args.latent, catalog)
        concept, scale = args.concept or label, args.scale or maximum
        if concept is None or scale is None:
            raise SteeringError(f"latent {args.latent} needs a concept and a scale: give --catalog (its label and "
                                f"maximum activation) or --concept TEXT and --scale X")
        result = concept_steering(model, bound.hook, target, concept, config, scale).to_dict()
    write_json(args.out, result)
    return {"out": args.out, **{k: result[k] for k in ("concept", "scale")},
            "rows": [{k: r[k] for k in ("setting", "value", "similarity", "gain", "nll", "distinct2")}
                     for r in result["rows"]]}


def search_verb(args: argparse.Namespace) -> dict:
    from mechscope.models import load_model
    from mechscope.steering import directions, search_ablation
    from mechscope.steering.refusal import refusal_prompt_sets
    from mechscope.tasks import SafetyRequests

    config = AblationSearchConfig(**config_options(args, AblationSearchConfig))
    model = load_model(args.model, device=args.device)
    sets = refusal_prompt_sets(args.n_train, args.n_val, config.seed,
                               task=SafetyRequests() if args.requests == "safety" else None)
    vector = directions(model, sets["harmful"], sets["harmless"], progress=True)
    result = search_ablation(model, vector, sets["harmful_val"], sets["harmless_val"], config)
    out = Path(args.out)
    vector.save(out / "directions")
    result.save(out / "search.json")
    return {"out": str(out), "baseline": result.baseline, "chosen": result.best,
            "pareto": [{k: result.trials[n][k] for k in ("number", "refusals", "kl")} for n in result.pareto]}


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


def _model_verb(steer, name: str, fn, help_text: str, config_type):
    """A verb over one model that writes to --out, with flags from `config_type`."""
    p = leaf(steer, name, fn, help_text)
    p.add_argument("model", help='"smollm2", an organism directory, a local HF directory or a hub id')
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    add_config_flags(p, config_type)
    return p


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
    p.add_argument("--requests", choices=("refusal", "safety"), default="refusal",
                   help="default prompt sets: the refusal task's acts or the safety request set's train templates")
    p.add_argument("--n-train", type=int, default=128, help="train instructions per side from the refusal task")
    p.add_argument("--n-val", type=int, default=32, help="validation instructions per side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_config_flags(p, RefusalConfig)

    p = _model_verb(steer, "caa", caa_verb, "contrastive activation addition (Rimsky et al. 2023): A/B vectors per "
                    "layer and their layer sweep on held-out questions", CAAConfig)
    p.add_argument("--questions", help="A/B questions, JSONL (question, behaviour, other, behaviour_letter); a fifth "
                   "held out (default: refusal questions from the safety request set, split by template)")

    p = _model_verb(steer, "iti", iti_verb, "inference-time intervention (Li et al. 2023): probe every head, keep the "
                    "top K by held-out accuracy; optionally fold the shifts into the attention output bias", ITIConfig)
    p.add_argument("--true", help="true statements, one per line (default: the factual set's train statements)")
    p.add_argument("--false", help="false statements, one per line")
    p.add_argument("--bake", help="also write a copy with the shifts in its attention output bias (families with one)")

    p = _model_verb(steer, "persona", persona_verb, "persona vectors (Chen et al. 2025): the model's own answers under "
                    "trait-eliciting and -suppressing system prompts, judged, response-token mean difference",
                    PersonaConfig)
    p.add_argument("--trait", required=True, help="optimistic, evil, sycophantic or a trait of --traits")
    p.add_argument("--traits", help="a TOML file of [trait.NAME] tables (description, opposite, positive_system, "
                   "negative_system, questions) adding to or replacing the built-in traits")
    p.add_argument("--judge", default="embedding", help="embedding (offline MiniLM) or an LLM: openai:MODEL, "
                   "anthropic:MODEL, hf:PATH")
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                   help="skip the evaluation (projection-score correlation and the steering check)")

    p = _model_verb(steer, "concept", concept_verb, "steer a dictionary latent toward its concept (Golden Gate style) "
                    "and measure concept similarity, fluency and a prompting baseline (AxBench-style, offline)",
                    ConceptConfig)
    p.add_argument("--dictionary", required=True, help="the dictionary directory (any supported format)")
    p.add_argument("--latent", type=int, required=True)
    p.add_argument("--catalog", help="its feature catalogue: the latent's label and maximum activation")
    p.add_argument("--concept", help="the concept's text (default: the latent's latest label)")
    p.add_argument("--scale", type=float, help="what a value of 1 means (default: the latent's maximum activation)")

    p = _model_verb(steer, "search", search_verb, "Heretic-style search: Optuna TPE over a layer-varying ablation of "
                    "the refusal directions, co-minimising refusals on harmful and KL on harmless requests",
                    AblationSearchConfig)
    p.add_argument("--requests", choices=("refusal", "safety"), default="safety",
                   help="prompt sets: the safety request set's templates or the refusal task's acts")
    p.add_argument("--n-train", type=int, default=64, help="instructions per side for the directions")
    p.add_argument("--n-val", type=int, default=32, help="instructions per side every trial is scored on")

    p = leaf(steer, "defend", defend_verb, "a conditional refusal defence: calibrate where to add a vector on wrapped "
             "and plain train requests, then refusal rates per jailbreak wrapper with and without it")
    p.add_argument("model")
    p.add_argument("vector", help="a directory written by steer refusal (its first layer is used)")
    p.add_argument("--requests", choices=("safety", "refusal"), default="safety",
                   help="the safety request set (categories, held-out templates) or the refusal task's acts")
    p.add_argument("--device", default="auto")
    add_config_flags(p, DefenceConfig)

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
