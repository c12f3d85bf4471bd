"""Choosing a circuit from edge scores: the top n edges, or greedy growth from the logits; then pruning of
dangling nodes (as MIB's `apply_topn` / `apply_greedy` with prune=True do)."""

from __future__ import annotations

import heapq
from functools import lru_cache

import torch
from torch import Tensor

from mechscope.circuits.graph import EdgeGraph
from mechscope.errors import MechscopeError

SELECTIONS = ("topn", "greedy")


@lru_cache(maxsize=8)
def _node_inputs(graph: EdgeGraph) -> dict[str, list[int]]:
    """Node name -> the destinations that feed it (a head's q/k/v inputs, an MLP's input, the logits)."""
    inputs: dict[str, list[int]] = {}
    for dst in range(graph.n_destinations):
        for node in graph.destination_nodes(dst):
            inputs.setdefault(node, []).append(dst)
    return inputs


def prune(graph: EdgeGraph, mask: Tensor) -> Tensor:
    """`mask` [n_sources, n_destinations] without edges that leave a node no path from the input reaches, or
    that enter a node with no path on to the logits. Under patching ablation this changes no output: such a
    node computes from corrupted inputs only, or its output reaches nothing unpatched."""
    mask = mask.bool() & graph.real
    inputs = _node_inputs(graph)
    reached = torch.zeros(graph.n_sources, dtype=torch.bool)
    reached[0] = True
    for src in range(1, graph.n_sources):
        reached[src] = bool(mask[reached][:, inputs[graph.sources[src]]].any())
    mask &= reached[:, None]
    useful = torch.zeros(graph.n_destinations, dtype=torch.bool)
    useful[-1] = True  # the logits
    for src in range(graph.n_sources - 1, 0, -1):
        if bool((mask[src] & useful).any()):
            useful[inputs[graph.sources[src]]] = True
    return mask & useful[None, :]


def _order(graph: EdgeGraph, scores: Tensor, absolute: bool) -> Tensor:
    values = graph.flat(scores.float())
    return (values.abs() if absolute else values).argsort(descending=True, stable=True)


def top_n(graph: EdgeGraph, scores: Tensor, n: int, absolute: bool = True) -> Tensor:
    """The `n` highest-scoring edges (by |score| when `absolute`), pruned: a bool mask [n_sources, n_destinations]."""
    _check(graph, n)
    chosen = torch.zeros(graph.n_edges, dtype=torch.bool)
    chosen[_order(graph, scores, absolute)[:n]] = True
    return prune(graph, graph.matrix(chosen))


def greedy(graph: EdgeGraph, scores: Tensor, n: int, absolute: bool = True) -> Tensor:
    """Grow a circuit of `n` edges from the logits: each step adds the best edge into a node already in it."""
    _check(graph, n)
    values = scores.float().abs() if absolute else scores.float()
    inputs = _node_inputs(graph)
    mask = torch.zeros(graph.n_sources, graph.n_destinations, dtype=torch.bool)
    heap: list[tuple[float, int, int]] = []
    opened: set[str] = set()

    def open_node(node: str) -> None:
        opened.add(node)
        for dst in inputs[node]:
            for src in range(int(graph.upstream[dst])):
                heapq.heappush(heap, (-float(values[src, dst]), src, dst))

    open_node("logits")
    while heap and int(mask.sum()) < n:
        _, src, dst = heapq.heappop(heap)
        if mask[src, dst]:
            continue
        mask[src, dst] = True
        if src > 0 and graph.sources[src] not in opened:
            open_node(graph.sources[src])
    return prune(graph, mask)


def select(graph: EdgeGraph, scores: Tensor, n: int, selection: str = "topn", absolute: bool = True) -> Tensor:
    """A circuit of at most `n` edges chosen by `selection` ("topn" or "greedy")."""
    if selection not in SELECTIONS:
        raise MechscopeError(f"circuit selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    return (top_n if selection == "topn" else greedy)(graph, scores, n, absolute)


def _check(graph: EdgeGraph, n: int) -> None:
    if not 0 <= n <= graph.n_edges:
        raise MechscopeError(f"a circuit takes 0 to {graph.n_edges} edges of this graph, got {n}")
