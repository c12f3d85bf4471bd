"""Node- and neuron-level attribution on a task: each head, MLP and the embedding (or each MLP neuron) scored on
the edge engine's passes, the top nodes (neurons) as a circuit, and its faithfulness with every other node (MLP
neuron) ablated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_attribution import neuron_groups, unit_names
from mechscope.circuits.edge_results import read_saved, strongest
from mechscope.circuits.edge_runs import attribute_edges, evaluate_circuits, task_inputs
from mechscope.circuits.faithfulness import faithfulness
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import ReadoutLogits, resumed_metric
from mechscope.circuits.task_runs import task_metric
from mechscope.data.atomic import atomic_write_json
from mechscope.errors import MechscopeError
from mechscope.manifest import build_manifest, file_checksums, write_manifest
from mechscope.models import HookedModel
from mechscope.tasks import TaskBatch

NODE_BUDGETS = (1, 2, 5, 10, 20, 50)  # nodes kept besides the embedding
NEURON_BUDGETS = (1, 10, 100, 1000)  # MLP neurons kept


def top_nodes(graph: EdgeGraph, scores: Tensor, n: int) -> list[str]:
    """The `n` heads and MLPs with the highest |score| [n_sources] (the embedding is not counted)."""
    if not 0 <= n < graph.n_sources:
        raise MechscopeError(f"a node circuit keeps 0 to {graph.n_sources - 1} heads and MLPs, got {n}")
    order = scores[1:].abs().argsort(descending=True, stable=True)[:n] + 1
    return [graph.sources[i] for i in order.tolist()]


def node_circuit(graph: EdgeGraph, nodes: Sequence[str]) -> Tensor:
    """The edges [n_sources, n_destinations] bool out of the embedding and `nodes`: ablating a node is patching
    every edge out of it."""
    kept = torch.zeros(graph.n_sources, dtype=torch.bool)
    kept[0] = True
    for node in nodes:
        if node not in graph.sources:
            raise MechscopeError(f"{node!r} is not a node of this graph; nodes look like 'a0.h1' or 'm0'")
        kept[graph.sources.index(node)] = True
    return graph.real & kept[:, None]


def node_faithfulness(model: HookedModel, batch: TaskBatch, graph: EdgeGraph, scores: Tensor,
                      budgets: Sequence[int] = NODE_BUDGETS, *, ablation: str = "patching", metric: str = "logit_diff",
                      memory_gb: float = 4.0, max_rows: int = 64) -> dict:
    """f(C) of the top-n node circuit for each n in `budgets`, with m(model) and m(empty)."""
    counts = [min(n, graph.n_sources - 1) for n in budgets]
    circuits = torch.stack([graph.real, torch.zeros_like(graph.real)]
                           + [node_circuit(graph, top_nodes(graph, scores, n)) for n in counts])
    values = evaluate_circuits(model, batch, graph, circuits, ablation=ablation, metric=metric, memory_gb=memory_gb,
                               max_rows=max_rows)
    return _curve("nodes", counts, values, ablation, metric)


def neuron_metrics(model: HookedModel, batch: TaskBatch, kept: Tensor, *, ablation: str = "patching",
                   metric: str = "logit_diff", max_rows: int = 64) -> Tensor:
    """Mean task metric [n_circuits] with every MLP neuron outside each circuit (bool [n_circuits, n_layers * d_mlp])
    set to its value on the corrupted prompts ("patching") or to zero; heads and the embedding stay clean."""
    if ablation not in ("patching", "zero"):
        raise MechscopeError(f"neuron circuits are ablated by patching or zero, got {ablation!r}")
    groups = neuron_groups(model)
    clean_in, corrupt_in = task_inputs(model, batch)
    _, corrupted = model.run_with_cache(corrupt_in, [g.hook for g in groups])
    run, fn, logits_at = model.record(clean_in), task_metric(model, batch, metric), ReadoutLogits(batch.positions)
    values = []
    for chunk in kept.split(max(1, max_rows // len(batch))):
        def ablate(act: Tensor, name: str, chunk=chunk) -> Tensor:
            group = groups[model.layer_of(name)]
            keep = chunk[:, None, None, group.start:group.stop].to(act.device)
            value = corrupted[name].to(act.dtype) if ablation == "patching" else act.new_zeros(())
            return torch.where(keep, act.unflatten(0, (len(chunk), -1)), value).flatten(0, 1)
        with model.hooks([(g.hook, ablate) for g in groups]):
            values.append(resumed_metric(model, run, len(chunk), fn, logits_at=logits_at))
    return torch.cat(values)


def neuron_faithfulness(model: HookedModel, batch: TaskBatch, scores: Tensor, budgets: Sequence[int] = NEURON_BUDGETS,
                        *, ablation: str = "patching", metric: str = "logit_diff", max_rows: int = 64) -> dict:
    """f(C) of the top-n neuron circuit (highest |score| [n_layers * d_mlp]) for each n in `budgets`."""
    counts = [min(n, len(scores)) for n in budgets]
    order = scores.abs().argsort(descending=True, stable=True)
    kept = torch.zeros(len(counts) + 2, len(scores), dtype=torch.bool)
    kept[0] = True
    for row, n in enumerate(counts, start=2):
        kept[row, order[:n]] = True
    values = neuron_metrics(model, batch, kept, ablation=ablation, metric=metric, max_rows=max_rows)
    return _curve("neurons", counts, values, ablation, metric)


def _curve(unit: str, counts: list[int], values: Tensor, ablation: str, metric: str) -> dict:
    """m(model), m(empty) (values 0 and 1) and each budget's metric and faithfulness."""
    faithful = faithfulness(values[2:], float(values[0]), float(values[1])).tolist()
    return {"ablation": ablation, "metric": metric, "model_metric": float(values[0]), "empty_metric": float(values[1]),
            "points": [{unit: n, "metric": float(v), "faithfulness": f}
                       for n, v, f in zip(counts, values[2:], faithful)]}


@dataclass
class NodeCircuit:
    """Scores keyed by node ("a0.h1", "m3", "input") or neuron ("m3.n17"), the kept ones, and the node curve."""

    level: str  # node or neuron
    scores: dict[str, float]
    circuit: list[str]  # the kept units, strongest first
    info: dict = field(default_factory=dict)
    curve: dict | None = None  # faithfulness of the top-n node (neuron) circuits

    @classmethod
    def load(cls, directory: str | Path) -> NodeCircuit:
        """The circuit `save` wrote to `directory`."""
        saved, manifest = read_saved(Path(directory), ("nodes.json", "manifest.json"), "node or neuron circuit",
                                     "NodeCircuit.save")
        return cls(saved["level"], saved["scores"], saved["circuit"], manifest.get("info", {}), saved.get("curve"))

    def summary(self) -> dict:
        return {"level": self.level, "info": self.info, "circuit": self.circuit,
                "top": [{"unit": u, "score": s} for u, s in strongest(self.scores, 10)],
                **({"faithfulness": self.curve["points"]} if self.curve else {})}

    def score_vector(self, model: HookedModel) -> Tensor:
        """The scores in the model's unit order ([n_sources] nodes or [n_layers * d_mlp] neurons); nodes.json's keys
        are sorted by name."""
        names = unit_names(EdgeGraph.for_model(model), model, self.level)
        missing = [name for name in names if name not in self.scores]
        if missing:
            raise MechscopeError(f"the saved {self.level} scores do not fit this model: no score for {missing[:3]}")
        return torch.tensor([self.scores[name] for name in names])

    def save(self, out: str | Path, model=None, config=None) -> dict[str, str]:
        """nodes.json (scores, circuit, curve) and manifest.json in `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "nodes.json", {"level": self.level, "scores": self.scores, "circuit": self.circuit,
                                               "curve": self.curve})
        write_manifest(out, build_manifest("mechscope.node_circuit", model=model, config=config, info=self.info,
                                           files=file_checksums(out, ["nodes.json"])))
        return {"nodes": str(out / "nodes.json"), "manifest": str(out / "manifest.json")}


def unit_curve(model: HookedModel, batch: TaskBatch, level: str, scores: Tensor, config: EdgeCircuitConfig) -> dict:
    """The faithfulness curve of a node ([n_sources]) or neuron ([n_layers * d_mlp]) ranking, with `config.nodes`
    as the last budget."""
    if level == "node":
        return node_faithfulness(model, batch, EdgeGraph.for_model(model), scores, [*NODE_BUDGETS, config.nodes],
                                 ablation=config.ablation, metric=config.metric, memory_gb=config.memory_gb,
                                 max_rows=config.max_rows)
    return neuron_faithfulness(model, batch, scores, [*NEURON_BUDGETS, config.nodes], ablation=config.ablation,
                               metric=config.metric, max_rows=config.max_rows)


def find_nodes(model: HookedModel, batch: TaskBatch, config: EdgeCircuitConfig, curve: bool = True,
               progress: bool = False) -> NodeCircuit:
    """Score every node (or neuron) with `config.method`, keep the top `config.nodes`, and (with `curve`) measure
    the faithfulness of the top-n node (neuron) circuits."""
    graph, scores, info = attribute_edges(model, batch, config.method, steps=config.steps, ablation=config.ablation,
                                          metric=config.metric, memory_gb=config.memory_gb,
                                          source_chunk=config.source_chunk, level=config.level, progress=progress)
    names = unit_names(graph, model, config.level)
    if config.level == "node":
        kept = top_nodes(graph, scores, min(config.nodes, graph.n_sources - 1))
    else:
        kept = [names[i] for i in scores.abs().argsort(descending=True, stable=True)[:config.nodes].tolist()]
    result = NodeCircuit(config.level, dict(zip(names, scores.tolist())), kept, info)
    if curve:
        result.curve = unit_curve(model, batch, config.level, scores, config)
        result.info["faithfulness"] = result.curve["points"][-1]["faithfulness"]
    return result
