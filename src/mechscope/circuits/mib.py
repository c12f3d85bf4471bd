"""MIB's circuit graph: node and edge names, the candidate edges, and its circuit-file JSON layout.

Names and layout follow EAP-IG (Hanna et al. 2024; github.com/hannamw/EAP-IG, src/eap/graph.py), which
MIB (Mueller et al. 2025) reads submissions with. Nodes are "input", "a{l}.h{h}", "m{l}", "logits";
an edge is "{parent}->{child}", with "<q>", "<k>" or "<v>" appended when the child is a head. Every
node feeds every later input: a head's q/k/v from the input and all earlier heads and MLPs, an MLP
from those plus its own layer's heads (not in parallel-residual blocks, `parallel_attn_mlp`), the
logits from everything. Graph.to_json writes {"cfg": {n_layers, n_heads, parallel_attn_mlp, d_model},
"nodes": {name: {"in_graph": bool}}, "edges": {name: {"score": float, "in_graph": bool}}}; from_json
needs the three keys and looks every edge up by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mechscope.data.atomic import atomic_write_json
from mechscope.errors import MechscopeError

_NODE = re.compile(r"^(?:(input|logits)|a(\d+)\.h(\d+)(?:<([qkv])>)?|m(\d+))$")


def node_parts(name: str) -> tuple[str, int | None, int | None, str | None]:
    """(kind, layer, head, port) of a node or destination name: "input", "a1.h2<k>", "m0", "logits"."""
    match = _NODE.match(name)
    if match is None:
        raise MechscopeError(f"{name!r} is not a MIB node name; expected input, a{{l}}.h{{h}} (optionally "
                             "with <q>, <k> or <v>), m{l} or logits")
    fixed, a_layer, head, port, m_layer = match.groups()
    if fixed:
        return fixed, None, None, None
    if m_layer is not None:
        return "mlp", int(m_layer), None, None
    return "attention", int(a_layer), int(head), port


def split_edge(edge: str) -> tuple[str, str]:
    """(source node, destination with its port) of "src->dst<port>", both checked."""
    source, sep, destination = edge.partition("->")
    if not sep:
        raise MechscopeError(f"{edge!r} is not a MIB edge name; expected source->destination, e.g. a0.h1->a1.h2<k>")
    node_parts(source), node_parts(destination)
    return source, destination


def candidate_edges(n_layers: int, n_heads: int, parallel: bool = False) -> list[str]:
    """Every edge of the MIB graph, in EAP-IG's order (see the module doc)."""
    edges, residual = [], ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        edges += [f"{src}->{head}<{p}>" for src in residual for head in heads for p in "qkv"]
        mlp_sources = residual if parallel else residual + heads
        edges += [f"{src}->m{layer}" for src in mlp_sources]
        residual = residual + heads + [f"m{layer}"]
    return edges + [f"{src}->logits" for src in residual]


def graph_config(model) -> dict:
    """MIB's cfg for a HookedModel."""
    return {"n_layers": model.n_layers, "n_heads": model.info.n_heads,
            "parallel_attn_mlp": model.family.topology == "parallel", "d_model": model.info.d_model}


@dataclass(frozen=True)
class MIBCircuit:
    """A circuit file's content: the graph config, every edge's score, and the edges and nodes in the circuit."""

    cfg: dict
    scores: dict[str, float]
    edges: frozenset[str]
    nodes: frozenset[str]


def _candidates(cfg: dict) -> list[str]:
    try:
        return candidate_edges(int(cfg["n_layers"]), int(cfg["n_heads"]), bool(cfg.get("parallel_attn_mlp", False)))
    except (KeyError, TypeError, ValueError) as err:
        raise MechscopeError(f"a MIB cfg needs integer n_layers and n_heads, got {cfg}") from err


def circuit_nodes(edges: set[str] | frozenset[str]) -> frozenset[str]:
    """Nodes touching an edge of the circuit, plus the logits (always in MIB's graph)."""
    nodes = {"logits"}
    for edge in edges:
        source, destination = split_edge(edge)
        nodes |= {source, destination.split("<")[0]}
    return frozenset(nodes)


def write_mib_circuit(path: str | Path, scores: dict[str, float], circuit: set[str] | frozenset[str], cfg: dict) -> Path:
    """A circuit file MIB reads: every candidate edge with its score (0.0 where none is given) and in_graph."""
    candidates = _candidates(cfg)
    known = set(candidates)
    unknown = sorted((set(scores) | set(circuit)) - known)
    if unknown:
        raise MechscopeError(f"edges not in the MIB graph of {cfg.get('n_layers')} layers x {cfg.get('n_heads')} "
                             f"heads: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    nodes = circuit_nodes(circuit)
    every_node = [n for layer in range(int(cfg["n_layers"])) for n in
                  [f"a{layer}.h{h}" for h in range(int(cfg["n_heads"]))] + [f"m{layer}"]]
    document = {"cfg": dict(cfg),
                "nodes": {name: {"in_graph": name in nodes} for name in ["input", *every_node, "logits"]},
                "edges": {edge: {"score": float(scores.get(edge, 0.0)), "in_graph": edge in circuit}
                          for edge in candidates}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, document)
    return path


def read_mib_circuit(path: str | Path) -> MIBCircuit:
    """A MIB / EAP-IG circuit file (node entries may be {"in_graph": bool} or a bare bool)."""
    try:
        document = json.loads(Path(path).read_text())
        cfg, nodes, edges = document["cfg"], document["nodes"], document["edges"]
        scores = {name: float(entry["score"]) for name, entry in edges.items()}
        in_graph = frozenset(name for name, entry in edges.items() if entry["in_graph"])
        node_set = frozenset(name for name, entry in nodes.items()
                             if (entry["in_graph"] if isinstance(entry, dict) else entry))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MechscopeError(f"{path} is not a MIB circuit file: expected JSON with cfg, nodes {{name: "
                             "{in_graph}}} and edges {name: {score, in_graph}}") from err
    unknown = sorted(set(scores) - set(_candidates(cfg)))
    if unknown:
        raise MechscopeError(f"{path}: edges not in the graph its cfg describes: {unknown[:5]}")
    return MIBCircuit(dict(cfg), scores, in_graph, node_set)
