"""Export a catalogue in Neuronpedia's bulk format: features, activations and explanations batch JSONL files.

Layout and field names follow Neuronpedia's own exporter, utils/neuronpedia-utils/neuronpedia_utils/
export-data.py in github.com/hijohnnylin/neuronpedia (tables Neuron, Activation, Explanation), and its
SAEDashboard converter (convert-saedashboard-to-neuronpedia-export.py): files
`{out}/{modelId}/{layer}/{features,activations,explanations}/batch-{n}.jsonl.gz`, 1024 features per batch,
`layer` being the source id "{layer number}-{source set name}" and `index` the latent as a string.
Top activations carry binMin = binContains = -1 and binMax = their maximum, as in SAEDashboard; quantile
samples carry their bin's activation range and the fraction of activations it holds.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from mechscope.errors import MechscopeError
from mechscope.features.catalog import Catalog, Label, LatentInfo
from mechscope.features.examples import ContextExample

FEATURE_FIELDS = (
    "modelId", "layer", "index", "maxActApprox", "creatorId", "frac_nonzero", "freq_hist_data_bar_heights",
    "freq_hist_data_bar_values", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
    "neuron_alignment_indices", "neuron_alignment_l1", "neuron_alignment_values", "correlated_neurons_indices",
    "correlated_neurons_l1", "correlated_neurons_pearson", "decoder_weights_dist", "neg_str", "neg_values",
    "pos_str", "pos_values", "sourceSetName", "topkCosSimIndices", "topkCosSimValues", "vector", "vectorLabel",
    "hookName", "vectorDefaultSteerStrength", "hasVector")
ACTIVATION_FIELDS = (
    "id", "modelId", "layer", "index", "creatorId", "dataSource", "tokens", "maxValue", "minValue", "values",
    "maxValueTokenIndex", "dfaValues", "dfaMaxValue", "dfaTargetIndex", "binContains", "binMin", "binMax")
EXPLANATION_FIELDS = (
    "id", "modelId", "layer", "index", "authorId", "description", "embedding", "typeName", "explanationModelName",
    "umap_x", "umap_y", "umap_cluster", "umap_log_feature_sparsity")
BATCH = 1024


def export_neuronpedia(directory: str | Path, out: str | Path, model_id: str | None = None,
                       source_set: str | None = None, creator_id: str | None = None) -> Path:
    """Write the catalogue in `directory` under `out`; returns the source directory ({out}/{modelId}/{layer})."""
    with Catalog(directory) as catalog:
        manifest = catalog.manifest
        layer = re.match(r"blocks\.(\d+)\.", manifest["hook"])
        if layer is None:
            raise MechscopeError(f"Neuronpedia sources are per layer; hook {manifest['hook']} has no layer number")
        model_id = model_id or Path(manifest["model"]["name"]).name.lower()
        source_set = source_set or f"mechscope-{manifest['dictionary']['d_sae']}"
        ids = {"modelId": model_id, "layer": f"{layer.group(1)}-{source_set}"}
        root = Path(out) / model_id / ids["layer"]
        edges = catalog.histogram_edges
        bins, last = catalog.meta["quantile_bins"], len(catalog) - 1
        batches: dict[str, list[dict]] = {"features": [], "activations": [], "explanations": []}
        for info, examples in catalog.with_examples():
            batches["features"].append(_feature(info, ids, edges, source_set, creator_id))
            batches["activations"] += [_activation(e, info, ids, bins, manifest, creator_id) for e in examples
                                       if e.kind != "random_negative"]
            batches["explanations"] += [_explanation(label, info, ids, creator_id) for label in info.labels]
            if len(batches["features"]) == BATCH or info.latent == last:
                number = info.latent // BATCH
                for kind, rows in batches.items():
                    _write_jsonl(root / kind / f"batch-{number}.jsonl.gz", rows)
                    rows.clear()
    return root


def _feature(info: LatentInfo, ids: dict, edges: list[float], source_set: str, creator_id: str | None) -> dict:
    first, counts = info.histogram["first"], info.histogram["counts"]
    centres = [(edges[max(b - 1, 0)] * edges[min(b, len(edges) - 1)]) ** 0.5 for b in range(first, first + len(counts))]
    return {**ids, "index": str(info.latent), "maxActApprox": info.max_activation, "creatorId": creator_id,
            "frac_nonzero": info.density, "freq_hist_data_bar_heights": counts, "freq_hist_data_bar_values": centres,
            "logits_hist_data_bar_heights": [], "logits_hist_data_bar_values": [],
            "neuron_alignment_indices": [], "neuron_alignment_l1": [], "neuron_alignment_values": [],
            "correlated_neurons_indices": [], "correlated_neurons_l1": [], "correlated_neurons_pearson": [],
            "decoder_weights_dist": [],
            "neg_str": [t for t, _ in info.bottom_logits], "neg_values": [v for _, v in info.bottom_logits],
            "pos_str": [t for t, _ in info.top_logits], "pos_values": [v for _, v in info.top_logits],
            "sourceSetName": source_set,
            "topkCosSimIndices": [j for j, _ in info.decoder_neighbours],
            "topkCosSimValues": [v for _, v in info.decoder_neighbours],
            "vector": [], "vectorLabel": None, "hookName": None, "vectorDefaultSteerStrength": None,
            "hasVector": False}


def _explanation(label: Label, info: LatentInfo, ids: dict, creator_id: str | None) -> dict:
    return {**ids, "id": f"mechscope-label-{label.id}", "index": str(info.latent), "authorId": creator_id,
            "description": label.text, "embedding": None, "typeName": label.explainer,
            "explanationModelName": label.model or None, "umap_x": None, "umap_y": None, "umap_cluster": None,
            "umap_log_feature_sparsity": None}


def _activation(e: ContextExample, info: LatentInfo, ids: dict, bins: int, manifest: dict,
                creator_id: str | None) -> dict:
    values = list(e.activations)
    top = max(values)
    if e.kind == "top":
        bin_min, bin_max, contains = -1.0, top, -1.0
    else:
        bin_min, bin_max, contains = (info.quantile_edges[e.quantile_bin], info.quantile_edges[e.quantile_bin + 1],
                                      1 / bins)
    return {**ids, "id": f"{ids['layer']}-{info.latent}-{e.kind}-{e.split}-{e.rank}", "index": str(info.latent),
            "creatorId": creator_id, "dataSource": manifest.get("source") or "activation cache",
            "tokens": list(e.tokens), "maxValue": top, "minValue": min(values), "values": values,
            "maxValueTokenIndex": values.index(top), "dfaValues": [], "dfaMaxValue": None, "dfaTargetIndex": None,
            "binContains": contains, "binMin": bin_min, "binMax": bin_max}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
