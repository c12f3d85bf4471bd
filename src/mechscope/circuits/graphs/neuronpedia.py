"""Export a pruned attribution graph as Neuronpedia's attribution-graph JSON, so it opens in Neuronpedia's viewer.

Field names and node ids are circuit-tracer's (frontend/graph_models.py, utils/create_graph_files.py in
safety-research/circuit-tracer): metadata {slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold},
qParams {pinnedIds, supernodes, linkType, clickedId, sg_pos}, nodes {node_id, feature, layer, ctx_idx,
feature_type, token_prob, is_target_logit, run_idx, reverse_ctx_idx, jsNodeId, clerp, influence, activation} and
links {source, target, weight}; feature ids "{layer}_{latent}_{pos}", errors "0_{layer}_{pos}", tokens
"E_{token}_{pos}", logits "{n_layers + 1}_{token}_{pos}".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mechscope.circuits.graphs.graph import AttributionGraph
from mechscope.circuits.graphs.influence import PrunedGraph, prune
from mechscope.data.atomic import atomic_write_json

LabelFn = Callable[[int, int], str]  # (layer, latent) -> label ("" when none)


IDS = {"feature": "{layer}_{latent}_{pos}", "error": "0_{layer}_{pos}", "token": "E_{latent}_{pos}",
       "logit": "{after}_{latent}_{pos}"}  # logits sit in "layer" n_layers + 1


def node_id(graph: AttributionGraph, index: int) -> str:
    node = graph.node(index)
    return IDS[node.kind].format(layer=node.layer, latent=node.latent, pos=node.pos, after=graph.n_layers + 1)


def _node(graph: AttributionGraph, index: int, influence: float, labels: LabelFn | None) -> dict:
    node, ident = graph.node(index), node_id(graph, index)
    fields = dict(node_id=ident, feature=node.latent, layer=str(node.layer), ctx_idx=node.pos, token_prob=0.0,
                  is_target_logit=False, run_idx=0, reverse_ctx_idx=0, clerp="", influence=influence, activation=None)
    if node.kind == "feature":
        label = labels(node.layer, node.latent) if labels else ""
        return {**fields, "feature_type": "cross layer transcoder", "jsNodeId": f"{node.layer}_{node.latent}-0",
                "clerp": label, "activation": float(graph.activations[index])}
    if node.kind == "error":
        return {**fields, "feature": -1, "feature_type": "mlp reconstruction error",
                "jsNodeId": f"{node.layer}_{node.pos}-0"}
    if node.kind == "token":
        return {**fields, "feature": node.pos, "layer": "E", "feature_type": "embedding",
                "jsNodeId": f"E_{node.latent}-{node.pos}"}
    i = index - graph.logit_start
    prob = float(graph.logit_probabilities[i])
    return {**fields, "layer": str(graph.n_layers + 1), "feature_type": "logit", "token_prob": prob,
            "is_target_logit": i == 0, "jsNodeId": f"L_{node.latent}-{node.pos}",
            "clerp": f'Output "{graph.logit_labels[i]}" (p={prob:.3f})'}


def neuronpedia_graph(graph: AttributionGraph, slug: str, scan: str, pruned: PrunedGraph | None = None,
                      labels: LabelFn | None = None, supernodes: list[list[str]] | None = None,
                      node_threshold: float = 0.8, edge_threshold: float = 0.98) -> dict:
    """The pruned graph as Neuronpedia's JSON (a dict); `supernodes` are [name, node_id, ...] lists."""
    pruned = pruned or prune(graph, node_threshold, edge_threshold)
    kept = pruned.node_mask.nonzero().squeeze(1).tolist()
    nodes = {i: _node(graph, i, float(pruned.cumulative_influence[i]), labels) for i in kept}
    links = [{"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": w}
             for t, s, w in zip(graph.targets[pruned.edge_mask].tolist(), graph.sources[pruned.edge_mask].tolist(),
                                graph.weights[pruned.edge_mask].tolist()) if s in nodes and t in nodes]
    linked = {link["source"] for link in links} | {link["target"] for link in links}
    used = [n for n in nodes.values() if n["node_id"] in linked or n["feature_type"] in ("embedding", "logit")]
    return {"metadata": {"slug": slug, "scan": scan, "transcoder_list": [], "prompt_tokens": graph.token_labels,
                         "prompt": graph.info.get("prompt") or "".join(graph.token_labels),
                         "node_threshold": node_threshold},
            "qParams": {"pinnedIds": [], "supernodes": supernodes or [], "linkType": "both", "clickedId": "",
                        "sg_pos": ""},
            "nodes": used, "links": links}


def write_neuronpedia_graph(data: dict, directory: str | Path) -> Path:
    """{slug}.json in `directory`, plus graph-metadata.json listing it as circuit-tracer's local server expects."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{data['metadata']['slug']}.json"
    atomic_write_json(path, data)
    index_path = directory / "graph-metadata.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"graphs": []}
    index["graphs"] = [g for g in index["graphs"] if g.get("slug") != data["metadata"]["slug"]] + [data["metadata"]]
    atomic_write_json(index_path, index)
    return path
