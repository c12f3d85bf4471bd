"""A first automatic supernode grouping of a pruned graph's features: by label similarity and co-activation.

Two kept features in adjacent layers (|layer difference| <= 1) join one group when their labels share most words
(Jaccard >= label_similarity) or when they act together: they fire at the same position and the directions of
their kept output edges agree (cosine >= coactivation). Groups are the connected components of that relation;
each becomes a supernode [name, node_id, ...] (Neuronpedia's qParams form) named after its commonest label words.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

from mechscope.circuits.graphs.graph import AttributionGraph
from mechscope.circuits.graphs.influence import PrunedGraph
from mechscope.circuits.graphs.neuronpedia import LabelFn, node_id


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def auto_supernodes(graph: AttributionGraph, pruned: PrunedGraph, labels: LabelFn | None = None,
                    label_similarity: float = 0.5, coactivation: float = 0.8) -> list[list[str]]:
    """Supernodes [name, node_id, ...] of two or more kept features each."""
    kept = [i for i in pruned.node_mask[:graph.n_features].nonzero().squeeze(1).tolist()]
    if len(kept) < 2:
        return []
    position = {index: n for n, index in enumerate(kept)}
    outputs = torch.zeros(len(kept), graph.n_nodes)  # each kept feature's kept output edges
    chosen = pruned.edge_mask & torch.isin(graph.sources, torch.tensor(kept))
    rows = torch.tensor([position[s] for s in graph.sources[chosen].tolist()], dtype=torch.long)
    outputs.index_put_((rows, graph.targets[chosen]), graph.weights[chosen], accumulate=True)
    cosine = torch.nn.functional.normalize(outputs, dim=1) @ torch.nn.functional.normalize(outputs, dim=1).T
    layer, pos = graph.features[kept, 0], graph.features[kept, 1]
    words = [_words(labels(int(graph.features[i, 0]), int(graph.features[i, 2]))) if labels else set() for i in kept]
    parent = list(range(len(kept)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(kept)):
        for b in range(a + 1, len(kept)):
            if abs(int(layer[a]) - int(layer[b])) > 1:
                continue
            similar = _jaccard(words[a], words[b]) >= label_similarity
            together = int(pos[a]) == int(pos[b]) and float(cosine[a, b]) >= coactivation
            if similar or together:
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(len(kept)):
        groups.setdefault(root(a), []).append(a)
    supernodes = []
    for members in (m for m in groups.values() if len(m) > 1):
        common = Counter(w for a in members for w in words[a]).most_common(2)
        name = " ".join(w for w, _ in common) or f"L{int(layer[members[0]])}@{int(pos[members[0]])} group"
        supernodes.append([name, *(node_id(graph, kept[a]) for a in members)])
    return supernodes
