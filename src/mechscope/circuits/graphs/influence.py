"""Influence, pruning and graph scores over a sparse attribution graph, with circuit-tracer's definitions.

Edges into each node are normalised to |weight| / sum |weight|; a node's influence is the sum over paths of
products of normalised weights from it to the logits, each logit weighted by its probability (computed as
w A + w A^2 + ..., which ends because the graph is acyclic). `prune` keeps the nodes holding `node_threshold` of
the influence and then the edges holding `edge_threshold` (circuit-tracer's `prune_graph`); `graph_scores` are the
paper's replacement and completeness scores (circuit-tracer's `compute_graph_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.circuits.graphs.graph import AttributionGraph


def normalized_weights(targets: Tensor, weights: Tensor, n_nodes: int) -> Tensor:
    """|weight| / (sum of |weight| into the edge's target), per edge."""
    magnitude = weights.abs()
    totals = torch.zeros(n_nodes, dtype=magnitude.dtype).index_add_(0, targets, magnitude)
    return magnitude / totals[targets].clamp_min(1e-10)


def influence(targets: Tensor, sources: Tensor, normalized: Tensor, start: Tensor, max_steps: int = 10_000) -> Tensor:
    """sum_k start A^k (k >= 1) for the normalised adjacency A given as edges. Only nodes with inputs (rows) pass
    influence on, so the powers run over the edges between rows and one last pass spreads their sum to every
    source: a graph with a few rows costs a few passes over its edges, not one per path length."""
    is_row = torch.zeros(len(start), dtype=torch.bool)
    is_row[targets] = True
    inner = is_row[sources]
    inner_targets, inner_sources, inner_weights = targets[inner], sources[inner], normalized[inner]
    reaching, current = start.clone(), start
    for _ in range(max_steps):
        current = torch.zeros_like(start).index_add_(0, inner_sources, inner_weights * current[inner_targets])
        if not current.any():
            return torch.zeros_like(start).index_add_(0, sources, normalized * reaching[targets])
        reaching += current
    raise RuntimeError(f"influence did not vanish after {max_steps} steps: the graph has a cycle")


def logit_weights(graph: AttributionGraph) -> Tensor:
    weights = torch.zeros(graph.n_nodes)
    weights[graph.logit_start:] = graph.logit_probabilities.float()
    return weights


def node_influence(graph: AttributionGraph) -> Tensor:
    """Each node's influence on the logits [n_nodes]."""
    normalized = normalized_weights(graph.targets, graph.weights, graph.n_nodes)
    return influence(graph.targets, graph.sources, normalized, logit_weights(graph))


def _threshold(scores: Tensor, fraction: float) -> Tensor:
    """The smallest score among the top scores that hold `fraction` of their total."""
    ordered = scores.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum().clamp_min(1e-30)
    return ordered[min(int(torch.searchsorted(cumulative, torch.tensor(fraction))), len(ordered) - 1)]


@dataclass
class PrunedGraph:
    node_mask: Tensor  # [n_nodes] kept nodes
    edge_mask: Tensor  # [n_edges] kept edges
    cumulative_influence: Tensor  # [n_nodes] fraction of influence held by nodes at least as influential


def prune(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PrunedGraph:
    """The nodes and edges that carry most of the logit influence; tokens and logits are always kept."""
    start, targets, sources = logit_weights(graph), graph.targets, graph.sources
    scores = node_influence(graph)
    node_mask = scores >= _threshold(scores, node_threshold)
    node_mask[graph.token_start:] = True
    inside = node_mask[targets] & node_mask[sources]
    normalized = normalized_weights(targets, graph.weights * inside, graph.n_nodes)
    kept_influence = influence(targets, sources, normalized, start) + start
    edge_scores = normalized * kept_influence[targets]
    edge_mask = inside & (edge_scores >= _threshold(edge_scores[inside], edge_threshold)) if inside.any() else inside
    while True:  # drop features and errors left without outgoing edges, features without incoming ones
        has_out = torch.zeros(graph.n_nodes, dtype=torch.bool)
        has_out[sources[edge_mask]] = True
        has_in = torch.zeros(graph.n_nodes, dtype=torch.bool)
        has_in[targets[edge_mask]] = True
        new_mask = node_mask.clone()
        new_mask[:graph.token_start] &= has_out[:graph.token_start]
        new_mask[:graph.n_features] &= has_in[:graph.n_features]
        if torch.equal(new_mask, node_mask):
            break
        node_mask = new_mask
        edge_mask &= node_mask[targets] & node_mask[sources]
    ordered, order = scores.sort(descending=True)
    cumulative = torch.zeros_like(scores)
    cumulative[order] = ordered.cumsum(0) / ordered.sum().clamp_min(1e-30)
    return PrunedGraph(node_mask, edge_mask, cumulative)


@dataclass
class GraphScores:
    replacement: float  # fraction of token -> logit influence that does not end at error nodes
    completeness: float  # influence-weighted fraction of each node's input that comes from non-error nodes


def graph_scores(graph: AttributionGraph) -> GraphScores:
    """The paper's replacement and completeness scores (Ameisen et al. 2025, section 5.2)."""
    start = logit_weights(graph)
    normalized = normalized_weights(graph.targets, graph.weights, graph.n_nodes)
    scores = influence(graph.targets, graph.sources, normalized, start)
    token = scores[graph.token_start:graph.logit_start].sum()
    error = scores[graph.error_start:graph.token_start].sum()
    from_error = (graph.sources >= graph.error_start) & (graph.sources < graph.token_start)
    error_fraction = torch.zeros(graph.n_nodes).index_add_(0, graph.targets[from_error], normalized[from_error])
    output = scores + start
    return GraphScores(replacement=float(token / (token + error).clamp_min(1e-30)),
                       completeness=float(((1 - error_fraction) * output).sum() / output.sum()))
