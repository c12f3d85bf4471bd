"""Neuronpedia export: the exact field lists of Neuronpedia's exporter, values that agree with the catalogue."""

from __future__ import annotations

import gzip
import json
import shutil

from mechscope.features import Catalog
from mechscope.features.neuronpedia import export_neuronpedia

# Neuronpedia's utils/neuronpedia-utils/neuronpedia_utils/export-data.py: columns of Neuron, Activation, Explanation
NEURON = ["modelId", "layer", "index", "maxActApprox", "creatorId", "frac_nonzero", "freq_hist_data_bar_heights",
          "freq_hist_data_bar_values", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
          "neuron_alignment_indices", "neuron_alignment_l1", "neuron_alignment_values", "correlated_neurons_indices",
          "correlated_neurons_l1", "correlated_neurons_pearson", "decoder_weights_dist", "neg_str", "neg_values",
          "pos_str", "pos_values", "sourceSetName", "topkCosSimIndices", "topkCosSimValues", "vector", "vectorLabel",
          "hookName", "vectorDefaultSteerStrength", "hasVector"]
ACTIVATION = ["id", "modelId", "layer", "index", "creatorId", "dataSource", "tokens", "maxValue", "minValue", "values",
              "maxValueTokenIndex", "dfaValues", "dfaMaxValue", "dfaTargetIndex", "binContains", "binMin", "binMax"]
EXPLANATION = ["id", "modelId", "layer", "index", "authorId", "description", "embedding", "typeName",
               "explanationModelName", "umap_x", "umap_y", "umap_cluster", "umap_log_feature_sparsity"]


def read(path):
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_export_uses_neuronpedias_fields_and_layout(mined, tmp_path):
    shutil.copytree(mined[0], tmp_path / "features")
    with Catalog(tmp_path / "features") as catalog:
        catalog.add_label(2, "where latent 0 cannot fire", explainer="oneshot", model="llm-a")
        info = catalog.get(2)
        top = catalog.examples(2, kind="top")
    root = export_neuronpedia(tmp_path / "features", tmp_path / "np", model_id="tiny-gpt2", source_set="test-res")
    assert root == tmp_path / "np/tiny-gpt2/1-test-res"
    features = read(root / "features/batch-0.jsonl.gz")
    activations = read(root / "activations/batch-0.jsonl.gz")
    explanations = read(root / "explanations/batch-0.jsonl.gz")
    assert len(features) == 48 and all(sorted(f) == sorted(NEURON) for f in features)
    assert all(sorted(a) == sorted(ACTIVATION) for a in activations)
    assert [sorted(e) for e in explanations] == [sorted(EXPLANATION)]

    feature = next(f for f in features if f["index"] == "2")
    assert feature["layer"] == "1-test-res" and feature["sourceSetName"] == "test-res"
    assert feature["maxActApprox"] == info.max_activation and feature["frac_nonzero"] == info.density
    assert feature["freq_hist_data_bar_heights"] == info.histogram["counts"]
    assert feature["pos_str"] == [t for t, _ in info.top_logits]
    assert feature["topkCosSimIndices"] == [j for j, _ in info.decoder_neighbours]
    mine = [a for a in activations if a["index"] == "2" and a["binMin"] == -1]
    assert [a["values"] for a in mine] == [list(e.activations) for e in top]
    assert all(a["maxValue"] == a["values"][a["maxValueTokenIndex"]] == a["binMax"] for a in mine)
    samples = [a for a in activations if a["index"] == "2" and a["binMin"] != -1]
    assert samples and all(a["binMin"] <= a["values"][a["maxValueTokenIndex"]] for a in samples)
    assert explanations[0]["description"] == "where latent 0 cannot fire"
    assert explanations[0]["typeName"] == "oneshot" and explanations[0]["explanationModelName"] == "llm-a"
