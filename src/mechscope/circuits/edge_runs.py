"""Edge-level circuits on a task's `TaskBatch`: score every edge, choose a circuit, measure its faithfulness.

Prompts run in passes of at most `prompts_per_pass` (chosen from a memory budget by `plan_passes`), so the
[batch, pos, n_sources, d_model] source values of one pass are all that is held; scores and metrics are
averaged over passes weighted by their prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from mechscope.circuits.acdc import ACDCConfig, ACDCResult, acdc, acdc_sweep
from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_attribution import EDGE_METHODS, edge_attribution
from mechscope.circuits.edge_patching import (SourceValues, memory_estimate, replacement_values, source_sums,
                                              source_values)
from mechscope.circuits.edge_results import EdgeCircuit
from mechscope.circuits.edge_selection import select
from mechscope.circuits.faithfulness import MIB_FRACTIONS, circuit_metrics, cpr_cmd, faithfulness
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import paired_inputs
from mechscope.circuits.task_runs import task_metric
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel
from mechscope.tasks import TaskBatch


CIRCUIT_METHODS = (*EDGE_METHODS, "acdc")


def plan_passes(model: HookedModel, graph: EdgeGraph, batch: TaskBatch, memory_gb: float,
                source_chunk: int = 0, max_rows: int = 0) -> tuple[int, dict]:
    """The most prompts per pass whose estimated memory fits `memory_gb`, and that estimate: of attribution, or
    with `max_rows` of a patched pass stacking max_rows // prompts circuits (each holding every source)."""
    if len(batch) == 0:
        raise MechscopeError(f"the task batch is empty ({batch.report}); ask for more prompts or another task")
    n_pos = batch.clean.shape[1]

    def estimate(prompts: int) -> dict:
        if max_rows:
            return memory_estimate(model, graph, prompts, n_pos, grad=False, copies=max(1, max_rows // prompts))
        return memory_estimate(model, graph, prompts, n_pos, source_chunk=source_chunk)
    prompts = len(batch)
    while prompts > 1 and estimate(prompts)["total_bytes"] > memory_gb * 2**30:
        prompts = (prompts + 1) // 2
    return prompts, estimate(prompts)


def _passes(batch: TaskBatch, prompts_per_pass: int) -> list[TaskBatch]:
    return [batch.select(list(range(i, min(i + prompts_per_pass, len(batch)))))
            for i in range(0, len(batch), prompts_per_pass)]


def patched_estimate(model: HookedModel, graph: EdgeGraph, batch: TaskBatch, memory_gb: float,
                     positions: int | None = None) -> dict:
    """Memory of a patched pass over the batch (memory_estimate, grad=False): the fixed part, each stacked copy's
    part when every source's difference is held (the most a copy can hold), and how many such copies fit."""
    args = (model, graph, len(batch), batch.clean.shape[1])
    fixed = memory_estimate(*args, grad=False, copies=0, held=0, known=True, positions=positions)["total_bytes"]
    per_copy = memory_estimate(*args, grad=False, copies=1, known=True, positions=positions)["total_bytes"] - fixed
    return {"fixed_gib": round(fixed / 2**30, 3), "per_copy_gib": round(per_copy / 2**30, 4),
            "copies": max(0, int((memory_gb * 2**30 - fixed) // per_copy))}


def task_inputs(model: HookedModel, part: TaskBatch) -> tuple[dict, dict]:
    """The model's clean and corrupted inputs of a task batch."""
    return paired_inputs(model, part.clean, part.corrupted, part.attention_mask)


def source_means(model: HookedModel, graph: EdgeGraph, passes: Sequence[TaskBatch]) -> SourceValues:
    """Each source's output averaged over every prompt and real position of the clean runs [n_nodes, d_model]."""
    totals, count = None, 0
    for part in passes:
        clean_in, _ = task_inputs(model, part)
        sums, tokens = source_sums(source_values(model, graph, clean_in)[1], clean_in["attention_mask"])
        totals = sums if totals is None else {hook: totals[hook] + value for hook, value in sums.items()}
        count += tokens
    return {hook: value / count for hook, value in totals.items()}


def attribute_edges(model: HookedModel, batch: TaskBatch, method: str = "eap-ig", *, steps: int = 5,
                    ablation: str = "patching", metric: str = "logit_diff", prompts_per_pass: int | None = None,
                    memory_gb: float = 4.0, source_chunk: int = 0, level: str = "edge",
                    progress: bool = False) -> tuple[EdgeGraph, Tensor, dict]:
    """Every edge's score [n_sources, n_destinations] on the task (node [n_sources] or MLP neuron scores at
    `level` node or neuron), with the graph and how it was computed; `source_chunk` > 0 holds that many sources'
    outputs at a time (memory mode, see edge_attribution)."""
    graph = EdgeGraph.for_model(model)
    planned, estimate = plan_passes(model, graph, batch, memory_gb, source_chunk)
    passes = _passes(batch, prompts_per_pass or planned)
    if progress:
        print(f"{level} attribution ({method}): {graph.n_edges} edges, {len(batch)} prompts in {len(passes)} passes; "
              f"estimated memory per pass {estimate['total_gib']} GiB"
              + (f" (sources in chunks of {source_chunk})" if source_chunk else ""))
    means = source_means(model, graph, passes) if ablation == "mean" else None
    start, total, info = time.perf_counter(), None, {}
    for part in passes:
        clean_in, corrupt_in = task_inputs(model, part)
        scores, run = edge_attribution(model, graph, clean_in, corrupt_in, task_metric(model, part, metric), method,
                                       steps, ablation, means, source_chunk, level)
        weighted = scores * len(part)
        total = weighted if total is None else total + weighted
        for key in ("forward_passes", "backward_passes"):
            info[key] = info.get(key, 0) + run[key]
        for key in ("clean_metric", "corrupted_metric"):
            info[key] = info.get(key, 0.0) + run[key] * len(part) / len(batch)
    info.update(method=method, level=level, steps=steps, ablation=ablation, metric=metric, prompts=len(batch),
                passes=len(passes), memory_estimate=estimate, seconds=round(time.perf_counter() - start, 2), graph=graph.describe())
    return graph, total / len(batch), info


def evaluate_circuits(model: HookedModel, batch: TaskBatch, graph: EdgeGraph, circuits: Tensor, *,
                      ablation: str = "patching", metric: str = "logit_diff", prompts_per_pass: int | None = None,
                      memory_gb: float = 4.0, max_rows: int = 64) -> Tensor:
    """Mean task metric [n_circuits] with every edge outside each circuit (bool [n, n_sources, n_destinations])
    ablated."""
    passes = _passes(batch, prompts_per_pass or plan_passes(model, graph, batch, memory_gb, max_rows=max_rows)[0])
    means = source_means(model, graph, passes) if ablation == "mean" else None
    total = torch.zeros(len(circuits))
    for part in passes:
        clean_in, corrupt_in = task_inputs(model, part)
        replacement = replacement_values(ablation, source_values(model, graph, corrupt_in)[1], means)
        total += len(part) * circuit_metrics(model, graph, clean_in, replacement, circuits,
                                             task_metric(model, part, metric), max_rows)
    return total / len(batch)


def faithfulness_curve(model: HookedModel, batch: TaskBatch, graph: EdgeGraph, scores: Tensor,
                       budgets: Sequence[float | int] = MIB_FRACTIONS, *, selection: str = "topn",
                       ablation: str = "patching", metric: str = "logit_diff", prompts_per_pass: int | None = None,
                       memory_gb: float = 4.0, max_rows: int = 64, progress: bool = False) -> dict:
    """f(C) of the circuit chosen at each budget (fractions of the edges when floats, edge counts when ints),
    plus m(model), m(empty) and CPR and CMD over the fractional budgets."""
    counts = [int(b * graph.n_edges) if isinstance(b, float) else int(b) for b in budgets]
    if progress:
        prompts, estimate = plan_passes(model, graph, batch, memory_gb, max_rows=max_rows)
        print(f"faithfulness: {len(counts) + 2} circuits, {prompts} prompts x {max(1, max_rows // prompts)} circuits "
              f"per patched pass; estimated memory per pass {estimate['total_gib']} GiB (every source held)")
    circuits = torch.stack([graph.real, torch.zeros_like(graph.real)]
                           + [select(graph, scores, n, selection) for n in counts])
    values = evaluate_circuits(model, batch, graph, circuits, ablation=ablation, metric=metric,
                               prompts_per_pass=prompts_per_pass, memory_gb=memory_gb, max_rows=max_rows)
    model_value, empty_value = float(values[0]), float(values[1])
    faithful = faithfulness(values[2:], model_value, empty_value).tolist()
    points = [{"budget": b, "edges": n, "edges_after_pruning": int(c.sum()), "metric": float(v), "faithfulness": f}
              for b, n, c, v, f in zip(budgets, counts, circuits[2:], values[2:], faithful)]
    curve = {"selection": selection, "ablation": ablation, "metric": metric, "model_metric": model_value,
             "empty_metric": empty_value, "points": points}
    fractional = [(b, f) for b, f in zip(budgets, faithful) if isinstance(b, float)]
    if len(fractional) > 1:
        curve.update(cpr_cmd([b for b, _ in fractional], [f for _, f in fractional]))
    return curve


def _acdc_problem(model: HookedModel, batch: TaskBatch, config: EdgeCircuitConfig, progress: bool) -> tuple:
    """What every ACDC run on a task shares: the graph, clean inputs, replacement values, objective and memory
    estimate (printed with `progress`)."""
    graph = EdgeGraph.for_model(model)
    estimate = patched_estimate(model, graph, batch, config.memory_gb, positions=len(set(batch.positions.tolist())))
    if progress:
        print(f"acdc (tau {', '.join(map(str, sorted({config.tau, *config.taus}, reverse=True)))}): {graph.n_edges} "
              f"edges, {len(batch)} prompts; estimated memory per pass {estimate['fixed_gib']} GiB + "
              f"{estimate['per_copy_gib']} GiB per stacked candidate circuit holding every source's difference (fewer "
              f"held: more stack): {estimate['copies']}+ candidates per pass within memory_gb {config.memory_gb}")
    clean_in, corrupt_in = task_inputs(model, batch)
    means = source_means(model, graph, [batch]) if config.ablation == "mean" else None
    replacement = replacement_values(config.ablation, source_values(model, graph, corrupt_in)[1], means)
    metric = task_metric(model, batch, config.metric)
    objective = metric if config.metric == "kl_to_clean" else (lambda logits: -metric(logits))
    return graph, clean_in, replacement, objective, estimate


def _acdc_info(run: ACDCResult, graph: EdgeGraph, batch: TaskBatch, config: EdgeCircuitConfig, estimate: dict,
               start: float) -> dict:
    return {"method": "acdc", "tau": config.tau, "ablation": config.ablation, "metric": config.metric,
            "prompts": len(batch), "forward_passes": run.forward_passes, "candidate_circuits": run.rows,
            "most_stacked": run.most_copies,
            "blocks_computed": run.blocks, "edges_visited": len(run.effects),
            "naive_forward_passes": graph.n_edges + 1,  # one-edge-per-forward ACDC, plus the unpatched run
            "skipped_edges": run.skipped, "objective": run.objective, "memory_estimate": estimate,
            "seconds": round(time.perf_counter() - start, 2), "graph": graph.describe()}


def acdc_edges(model: HookedModel, batch: TaskBatch, config: EdgeCircuitConfig = EdgeCircuitConfig(),
               progress: bool = False) -> tuple[EdgeGraph, Tensor, Tensor, dict]:
    """ACDC on every prompt at once (its decisions need one objective): the graph, each edge's objective increase
    when visited as its score, the kept edges, and the passes it took. It minimises KL to the clean run when the
    metric is kl_to_clean and maximises the task metric otherwise."""
    graph, clean_in, replacement, objective, estimate = _acdc_problem(model, batch, config, progress)
    start = time.perf_counter()
    run = acdc(model, graph, clean_in, replacement, objective, ACDCConfig(config.tau, config.memory_gb),
               batch.positions)
    return graph, graph.scores_matrix(run.effects), run.kept, _acdc_info(run, graph, batch, config, estimate, start)


def acdc_sweep_edges(model: HookedModel, batch: TaskBatch, config: EdgeCircuitConfig = EdgeCircuitConfig(),
                     progress: bool = False) -> tuple[EdgeGraph, Tensor, Tensor, dict]:
    """`acdc_sweep` at `config.tau` and every threshold in `config.taus` on one set-up: each edge scores the largest
    tau that keeps it, ties broken by its effect in the lowest-tau run, so that MIB's curve can rank every edge
    ACDC visited; the circuit is the one kept at `config.tau`."""
    taus = sorted({config.tau, *config.taus})
    graph, clean_in, replacement, objective, estimate = _acdc_problem(model, batch, config, progress)
    start = time.perf_counter()
    largest, runs = acdc_sweep(model, graph, clean_in, replacement, objective, taus,
                               ACDCConfig(config.tau, config.memory_gb), batch.positions)
    lowest_effects = graph.scores_matrix(runs[0].effects).abs()
    gap = min([taus[0], *(b - a for a, b in zip(taus, taus[1:]))])  # ties stay below the next threshold
    scores = graph.scores_matrix(largest) + 0.5 * gap * lowest_effects / lowest_effects.max().clamp_min(1e-12)
    chosen = runs[taus.index(config.tau)]
    info = {**_acdc_info(chosen, graph, batch, config, estimate, start), "taus": taus[::-1],
            "sweep": [{"tau": tau, "kept": int(run.kept.sum()), "forward_passes": run.forward_passes}
                      for tau, run in reversed(list(zip(taus, runs)))]}
    info["sweep_forward_passes"] = sum(run.forward_passes for run in runs)
    return graph, scores, chosen.kept, info


def find_circuit(model: HookedModel, batch: TaskBatch, config: EdgeCircuitConfig = EdgeCircuitConfig(),
                 curve: bool = True, progress: bool = False) -> EdgeCircuit:
    """Score the edges with `config.method`, keep `config.edges` of them (acdc: the edges it keeps at `config.tau`),
    and (with `curve`) measure the faithfulness of the circuit and of MIB's budgets."""
    if config.method == "acdc":
        graph, scores, circuit, info = (acdc_sweep_edges if config.taus else acdc_edges)(model, batch, config, progress)
    else:
        graph, scores, info = attribute_edges(model, batch, config.method, steps=config.steps,
                                              ablation=config.ablation, metric=config.metric,
                                              memory_gb=config.memory_gb, source_chunk=config.source_chunk,
                                              progress=progress)
        circuit = select(graph, scores, min(config.edges, graph.n_edges), config.selection)
    result = EdgeCircuit(graph, graph.scores_dict(scores), graph.edges_in(circuit), info)
    if curve:
        result.curve = faithfulness_curve(model, batch, graph, scores, [*MIB_FRACTIONS, config.edges],
                                          selection=config.selection, ablation=config.ablation, metric=config.metric,
                                          memory_gb=config.memory_gb, max_rows=config.max_rows, progress=progress)
        result.info["faithfulness"] = result.curve["points"][-1]["faithfulness"]
    return result
