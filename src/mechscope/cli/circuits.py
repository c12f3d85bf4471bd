"""CLI verbs for circuits: patch, path-patch, dla, heads, logit-lens, attention, circuit (edge level)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from mechscope.cli.arguments import leaf
from mechscope.circuits.faithfulness import MIB_FRACTIONS
from mechscope.cli.config_flags import add_config_flags, config_options
from mechscope.circuits.config import EdgeCircuitConfig, HeadsConfig, PatchConfig, PathPatchConfig, TaskSelection
from mechscope.errors import MechscopeError


def _task_batch(model, selection: TaskSelection):
    from mechscope.circuits.task_runs import same_shape
    from mechscope.tasks import make_task

    task = make_task("jsonl", path=selection.task) if selection.task.endswith(".jsonl") else make_task(selection.task)
    batch = task.batch(model.tokenizer, selection.prompts, selection.split, selection.seed)
    return same_shape(batch) if selection.same_shape else batch


def _report(result, out: str | None, title: str) -> dict:
    summary = result.summary()
    if out is not None:
        summary["files"] = result.save(out, title)
    return summary


def patch(args: argparse.Namespace) -> dict:
    from mechscope.circuits.task_runs import patch as run_patch
    from mechscope.models import load_model

    config = PatchConfig(**config_options(args, PatchConfig))
    model = load_model(args.model, device=args.device)
    batch = _task_batch(model, config)
    result = run_patch(model, batch, config.component, method=config.method, metric=config.metric,
                       noising=config.noising, max_rows=config.max_rows, progress=True)
    result.info["config"] = asdict(config)
    title = f"{config.method} patching: {config.component} on {config.task} ({'noising' if config.noising else 'denoising'})"
    return _report(result, args.out, title)


def path_patch(args: argparse.Namespace) -> dict:
    from mechscope.circuits.path_patching import path_patching
    from mechscope.circuits.task_runs import task_metric
    from mechscope.models import load_model

    config = PathPatchConfig(**config_options(args, PathPatchConfig))
    model = load_model(args.model, device=args.device)
    batch = _task_batch(model, config)
    result = path_patching(model, batch.clean, batch.corrupted, task_metric(model, batch, config.metric),
                           config.receivers, config.senders or None, attention_mask=batch.attention_mask,
                           freeze_mlps=config.freeze_mlps, max_rows=config.max_rows, progress=True)
    result.info.update(config=asdict(config), metric=config.metric)
    effect = result.effect()
    paths = [(f"{s}->{r}", float(effect[i, j])) for i, r in enumerate(result.labels["receiver"])
             for j, s in enumerate(result.labels["sender"])]
    summary = _report(result, args.out, f"path patching on {config.task}: metric after each sender -> receiver path")
    summary["strongest_paths"] = sorted(paths, key=lambda p: -abs(p[1]))[:10]
    return summary


def dla(args: argparse.Namespace) -> dict:
    from mechscope.circuits.task_runs import task_dla
    from mechscope.models import load_model

    selection = TaskSelection(**config_options(args, TaskSelection))
    model = load_model(args.model, device=args.device)
    result = task_dla(model, _task_batch(model, selection), per_head=not args.per_layer)
    return _report(result, args.out, f"direct logit attribution on {selection.task}")


def heads(args: argparse.Namespace) -> dict:
    from mechscope.circuits import head_scores, repeated_tokens
    from mechscope.models import load_model

    config = HeadsConfig(**config_options(args, HeadsConfig))
    model = load_model(args.model, device=args.device)
    tokens = repeated_tokens(model, config.prompts, config.length, config.seed)
    scores = head_scores(model, tokens, exclude_bos=config.exclude_bos,
                         exclude_current_token=config.exclude_current_token)
    summary = {}
    for kind, result in scores.items():
        out = None if args.out is None else str(Path(args.out) / kind)
        summary[kind] = {"top": result.top(5, by="value"), **({"files": result.save(out, f"{kind} scores")}
                                                               if out else {})}
    return summary


def logit_lens(args: argparse.Namespace) -> dict:
    from mechscope.circuits import logit_lens as run_lens
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    answer = None
    if args.answer is not None:
        ids = model.tokenizer(args.answer, add_special_tokens=False)["input_ids"]
        answer = ids[:1]
    result, tops = run_lens(model, [args.text], answer=answer, top=args.top)
    rows = {f"layer {i}": " | ".join(f"{t!r} {p:.3f}" for t, p in top) for i, top in enumerate(tops)}
    return {**rows, "log_prob_per_layer": [round(float(v), 4) for v in result.values],
            **({"files": result.save(args.out, "logit lens")} if args.out else {})}


def attention(args: argparse.Namespace) -> dict:
    from mechscope.circuits import write_pattern_view
    from mechscope.models import load_model

    model = load_model(args.model, device=args.device)
    return {"page": str(write_pattern_view(model, args.text, args.out or "."))}


def circuit(args: argparse.Namespace) -> dict:
    """`circuit MODEL`: score edges and save a circuit; `circuit eval DIR`: its faithfulness curve, CPR and CMD."""
    from mechscope.circuits.edge_runs import find_circuit
    from mechscope.circuits.node_runs import find_nodes
    from mechscope.models import load_model

    if args.model == "eval":
        return _evaluate_saved(args)
    config = EdgeCircuitConfig(**config_options(args, EdgeCircuitConfig))
    model = load_model(args.model, device=args.device)
    search = find_circuit if config.level == "edge" else find_nodes
    found = search(model, _task_batch(model, config), config, curve=not args.no_curve, progress=True)
    found.info["model_argument"] = args.model
    summary = found.summary()
    if args.out is not None:
        summary["files"] = found.save(args.out, model=model, config=config)
    return summary


def _evaluate_saved(args: argparse.Namespace) -> dict:
    """`circuit eval DIR`: re-measure the saved edge, node or neuron circuit's faithfulness on its own prompts."""
    from mechscope.circuits.edge_results import EdgeCircuit
    from mechscope.circuits.edge_runs import faithfulness_curve
    from mechscope.circuits.node_runs import NodeCircuit, unit_curve
    from mechscope.models import load_model

    if args.directory is None:
        raise MechscopeError("usage: mechscope circuit eval DIR (a directory written by mechscope circuit)")
    directory = Path(args.directory)
    units = (directory / "nodes.json").is_file()
    found = NodeCircuit.load(directory) if units else EdgeCircuit.load(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    config = EdgeCircuitConfig(**manifest["config"])
    model = load_model(found.info.get("model_argument", manifest["model"]["name"]), device=args.device)
    batch = _task_batch(model, config)
    if units:
        found.curve = unit_curve(model, batch, found.level, found.score_vector(model), config)
    else:
        found.curve = faithfulness_curve(model, batch, found.graph, found.graph.scores_matrix(found.scores),
                                         [*MIB_FRACTIONS, len(found.circuit)], selection=config.selection,
                                         ablation=config.ablation, metric=config.metric, memory_gb=config.memory_gb,
                                         max_rows=config.max_rows, progress=True)
    found.save(directory, model=model, config=config)
    summary = {key: found.curve.get(key) for key in ("cpr", "cmd", "model_metric", "empty_metric", "points")}
    return {"level": found.level, **summary} if units else summary


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("model", help='"smollm2", an organism directory, a local HF directory or a hub id')
    p.add_argument("--out", help=out_help)
    p.add_argument("--device", default="auto")


def register(verbs) -> None:
    p = leaf(verbs, "patch", patch, "activation or attribution patching over a task's clean/corrupted prompts")
    _common(p, "directory for values.safetensors, result.json, heatmap.png, heatmap.html")
    add_config_flags(p, PatchConfig)

    p = leaf(verbs, "path-patch", path_patch, "path patching: each sender head's effect through each receiver's input")
    _common(p, "directory for values.safetensors, result.json, heatmap.png, heatmap.html")
    add_config_flags(p, PathPatchConfig)

    p = leaf(verbs, "dla", dla, "direct logit attribution of each head, MLP and the embedding on a task")
    _common(p, "directory for the result and its heatmaps")
    add_config_flags(p, TaskSelection)
    p.add_argument("--per-layer", action="store_true", help="one attention term per layer instead of per head")

    p = leaf(verbs, "heads", heads, "previous-token, duplicate-token and induction scores of every head")
    _common(p, "directory with one result per head kind")
    add_config_flags(p, HeadsConfig)

    p = leaf(verbs, "logit-lens", logit_lens, "each layer's residual stream read through the unembedding")
    _common(p, "directory for the per-layer log-probabilities")
    p.add_argument("text")
    p.add_argument("--answer", help="score this completion (its first token) instead of the final prediction")
    p.add_argument("--top", type=int, default=5)

    p = leaf(verbs, "circuit", circuit, "edge-level circuit discovery (EAP, EAP-IG) with faithfulness, CPR and CMD; "
             "`circuit eval DIR` re-measures a saved circuit")
    _common(p, "directory for scores.json, circuit.json, curve.json and manifest.json")
    p.add_argument("directory", nargs="?", help="with MODEL = eval: the directory of a saved circuit")
    p.add_argument("--no-curve", action="store_true", help="skip the faithfulness curve (scores and circuit only)")
    add_config_flags(p, EdgeCircuitConfig)

    p = leaf(verbs, "attention", attention, "every head's attention pattern on a text, as one offline HTML page")
    _common(p, "directory for attention.html (default: here)")
    p.add_argument("text")
