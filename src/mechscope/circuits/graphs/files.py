"""Reading transcoder sets for graphs and writing a traced graph's files (graph, Neuronpedia JSON, viewer, manifest)."""

from __future__ import annotations

import re
from pathlib import Path

from mechscope.circuits.graphs.attribution import attribute
from mechscope.circuits.graphs.config import GraphConfig
from mechscope.circuits.graphs.grouping import auto_supernodes
from mechscope.circuits.graphs.influence import graph_scores, prune
from mechscope.circuits.graphs.neuronpedia import LabelFn, neuronpedia_graph, write_neuronpedia_graph
from mechscope.circuits.graphs.qk import main_path_heads, qk_attribution
from mechscope.circuits.graphs.transcoders import CrossLayerTranscoders, GraphError, MLPTranscoders, Transcoders
from mechscope.circuits.graphs.viewer import write_graph_viewer
from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries.transcoders import TranscoderSet, holds_transcoders, load_transcoders
from mechscope.manifest import build_manifest, write_manifest

_LAYER = re.compile(r"blocks\.(\d+)\.|(\d+)")


def from_transcoder_set(tset: TranscoderSet) -> Transcoders:
    """A TranscoderSet (mechscope's or circuit-tracer's files) as the graph's per-layer transcoders."""
    patterns = {(d.cfg.hook_name.replace(f"blocks.{layer}.", "blocks.{layer}.", 1),
                 d.cfg.hook_name_out.replace(f"blocks.{layer}.", "blocks.{layer}.", 1))
                for layer, d in zip(tset.layers, tset.dictionaries)}
    if len(patterns) != 1:
        raise GraphError(f"the transcoder set's hooks do not follow one per-layer pattern: {sorted(patterns)}")
    (input_hook, output_hook), = patterns
    dictionaries = [d.requires_grad_(False) for d in tset.dictionaries]
    return Transcoders(dictionaries, tset.layers, input_hook, output_hook)


def load_transcoder_directory(path: str | Path, device: str = "cpu") -> MLPTranscoders:
    """A cross-layer transcoder (mechscope's or circuit-tracer's CLT files), a transcoder set (TranscoderSet.save or
    circuit-tracer's config.yaml), or per-layer dictionaries saved one subfolder each (SAELens layout) whose layer is
    read from the cfg's hook_name (blocks.{l}.hook_mlp_in), else from the subfolder's name (layer_3, 3, ...)."""
    from mechscope.dictionaries.formats import load_dictionary

    path = Path(path)
    if holds_transcoders(path):
        found = load_transcoders(path, device)
        return from_transcoder_set(found) if isinstance(found, TranscoderSet) else CrossLayerTranscoders(found)
    folders = sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    if not folders:
        raise GraphError(f"{path} holds no transcoders: expected one subfolder per layer, each a saved dictionary")
    dictionaries, layers = [], []
    for folder in folders:
        transcoder = load_dictionary(folder, device=device).requires_grad_(False)
        found = _LAYER.search(transcoder.cfg.hook_name) or _LAYER.search(folder.name)
        if found is None:
            raise GraphError(f"{folder}: cannot tell its layer; name the folder after it (layer_3) or set its "
                             "cfg.json hook_name to blocks.{layer}.hook_mlp_in")
        dictionaries.append(transcoder)
        layers.append(int(found.group(1) or found.group(2)))
    return Transcoders(dictionaries, layers)

RESERVED_SLUGS = frozenset({"graph", "qk", "manifest", "graph-metadata"})  # {slug}.json would overwrite these


def trace(model, transcoders: MLPTranscoders, prompt, out: str | Path, config: GraphConfig | None = None,
          labels: LabelFn | None = None, supernodes: list[list[str]] | None = None,
          slug: str = "attribution-graph", scan: str | None = None, progress: bool = False) -> dict:
    """Attribute, prune and score `prompt`; write graph.{safetensors,json}, {slug}.json (Neuronpedia),
    graph.html, qk.json (QK attribution of the main paths' heads) and manifest.json to `out`; return the summary."""
    if slug in RESERVED_SLUGS:
        raise GraphError(f"slug {slug!r} would name the Neuronpedia JSON {slug}.json, a file trace writes for "
                         f"itself; choose another (not {', '.join(sorted(RESERVED_SLUGS))})")
    config = config or GraphConfig()
    out = Path(out)
    graph = attribute(model, transcoders, prompt, config, progress=progress)
    pruned = prune(graph, config.node_threshold, config.edge_threshold)
    groups = (supernodes or []) + auto_supernodes(graph, pruned, labels)
    data = neuronpedia_graph(graph, slug, scan or f"{model.info.name}-transcoders", pruned, labels, groups,
                             config.node_threshold, config.edge_threshold)
    graph.save(out)
    write_neuronpedia_graph(data, out)
    write_graph_viewer(data, out / "graph.html")
    scores = graph_scores(graph)
    qk = [qk_attribution(model, transcoders, graph.tokens.to(model.device), *found, zero_bos=config.zero_bos)
          for found in main_path_heads(model, graph, pruned, config.qk_heads)] if config.qk_heads else []
    atomic_write_json(out / "qk.json", [{"layer": a.layer, "head": a.head, "query_pos": a.query_pos,
                                         "key_pos": a.key_pos, "score": a.score, "top_terms": a.top(10)} for a in qk])
    summary = {"prompt": graph.info["prompt"], "targets": graph.logit_labels, "active_features": graph.n_features,
               "edges": len(graph.weights), "kept_nodes": int(pruned.node_mask.sum()),
               "kept_edges": int(pruned.edge_mask.sum()), "replacement_score": round(scores.replacement, 4),
               "completeness_score": round(scores.completeness, 4), "supernodes": len(groups),
               "qk_heads": [f"L{a.layer}.h{a.head} {a.query_pos}->{a.key_pos}" for a in qk],
               "estimated_mib": round(graph.info["memory_estimate"]["total_bytes"] / 2 ** 20, 1),
               "seconds": graph.info["seconds"]}
    write_manifest(out, build_manifest("mechscope.attribution_graph", model=model, config=config,
                                       transcoders=transcoders.kind,
                                       transcoder_layers=list(transcoders.layers), summary=summary))
    return {**summary, "out": str(out)}
