"""Neuronpedia JSON (circuit-tracer's field names and node ids), automatic supernodes, the offline viewer and the
`mechscope graph` verb end to end on the induction organism."""

from __future__ import annotations

import json
import re

import pytest
import torch

from mechscope.circuits.graphs import (AttributionGraph, auto_supernodes, neuronpedia_graph, prune,
                                       write_graph_viewer)
from mechscope.cli import main
from mechscope.dictionaries.formats import save_dictionary

NODE_FIELDS = {"node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
               "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"}


def planted_graph() -> AttributionGraph:
    """token 0 -> feature A (L0 #7 @0) -> logit 3, feature B (L0 #9 @1) a thousandth as strong."""
    return AttributionGraph(
        tokens=torch.tensor([5, 6]), token_labels=["a", "b"], features=torch.tensor([[0, 0, 7], [0, 1, 9]]),
        activations=torch.tensor([1.5, 1.0]), n_layers=1, logit_tokens=torch.tensor([3]), logit_labels=["c"],
        logit_probabilities=torch.tensor([0.9]), logit_values=torch.tensor([2.0]),
        targets=torch.tensor([0, 1, 6, 6]), sources=torch.tensor([4, 5, 0, 1]),
        weights=torch.tensor([2.0, 1.0, 3.0, 0.003]), info={"prompt": "ab"})


def test_neuronpedia_json_has_circuit_tracers_ids_and_only_the_kept_graph():
    graph = planted_graph()
    data = neuronpedia_graph(graph, "planted", "toy-scan", labels=lambda layer, latent: f"latent {latent}",
                             supernodes=[["mine", "0_7_0"]])
    nodes = {n["node_id"]: n for n in data["nodes"]}
    assert set(nodes) == {"0_7_0", "E_5_0", "E_6_1", "2_3_1"}
    assert all(set(n) == NODE_FIELDS for n in data["nodes"])
    assert nodes["0_7_0"]["jsNodeId"] == "0_7-0" and nodes["0_7_0"]["clerp"] == "latent 7"
    assert nodes["0_7_0"]["activation"] == 1.5 and nodes["0_7_0"]["feature_type"] == "cross layer transcoder"
    assert nodes["2_3_1"]["is_target_logit"] and nodes["2_3_1"]["clerp"] == 'Output "c" (p=0.900)'
    assert nodes["E_6_1"] == {**nodes["E_6_1"], "layer": "E", "feature": 1, "feature_type": "embedding"}
    assert sorted((l["source"], l["target"], l["weight"]) for l in data["links"]) == [
        ("0_7_0", "2_3_1", 3.0), ("E_5_0", "0_7_0", 2.0)]
    assert data["qParams"]["supernodes"] == [["mine", "0_7_0"]]
    assert set(data["metadata"]) == {"slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold"}


def test_auto_supernodes_group_similar_labels_and_coactive_features_only():
    # four features feeding one logit: A, B (layer 0, labels about cats), C (layer 1, same position and output
    # direction as D), D; A and C are far apart in layers and unrelated
    features = torch.tensor([[0, 0, 1], [0, 1, 2], [2, 1, 3], [2, 1, 4]])
    n_features, n_pos = 4, 2
    token0, logit = n_features + 3 * n_pos, n_features + 4 * n_pos
    graph = AttributionGraph(
        tokens=torch.tensor([5, 6]), token_labels=["a", "b"], features=features, activations=torch.ones(4),
        n_layers=3, logit_tokens=torch.tensor([3]), logit_labels=["c"], logit_probabilities=torch.tensor([1.0]),
        logit_values=torch.tensor([1.0]), targets=torch.tensor([0, 1, 2, 3, logit, logit, logit, logit]),
        sources=torch.tensor([token0, token0 + 1, token0 + 1, token0 + 1, 0, 1, 2, 3]),
        weights=torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    words = {1: "cat noun", 2: "the cat noun", 3: "number", 4: "dog"}
    groups = auto_supernodes(graph, prune(graph, 1.0, 1.0), lambda layer, latent: words[latent])
    assert sorted(sorted(g[1:]) for g in groups) == [["0_1_0", "0_2_1"], ["2_3_1", "2_4_1"]]
    assert any(g[0].startswith(("cat noun", "noun cat")) for g in groups)


def test_viewer_is_offline_and_embeds_the_graph(tmp_path):
    data = neuronpedia_graph(planted_graph(), "planted", "toy-scan")
    page = write_graph_viewer(data, tmp_path / "graph.html").read_text()
    assert not re.search(r"(src|href)=[\"']https?:", page)
    embedded = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == data


def test_graph_verb_on_the_induction_organism(tmp_path, induction, capsys):
    organism, transcoders, prompt, first = induction
    for layer, transcoder in zip(transcoders.layers, transcoders.dictionaries):
        transcoder.cfg.hook_name = f"blocks.{layer}.hook_mlp_in"
        save_dictionary(transcoder, tmp_path / "tc" / f"layer_{layer}")
    text = organism.model.to_string(prompt[1:])
    assert torch.equal(organism.model.to_tokens(text)[0], prompt)
    code = main(["graph", str(organism.path), str(tmp_path / "tc"), text, "--out", str(tmp_path / "g"),
                 "--device", "cpu", "--max-logits", "1", "--slug", "induction", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = json.loads((tmp_path / "g" / "induction.json").read_text())
    answer = int(prompt[first + 1])
    assert summary["targets"] == [organism.model.to_str_tokens([answer])[0]]
    logit = next(n for n in data["nodes"] if n["feature_type"] == "logit")
    assert logit["feature"] == answer
    ids = {n["node_id"] for n in data["nodes"]}
    assert f"E_{answer}_{first + 1}" in ids and all(l["source"] in ids and l["target"] in ids for l in data["links"])
    assert summary["qk_heads"][0] == f"L1.h{int(summary['qk_heads'][0][4])} {len(prompt) - 1}->{first + 1}"
    qk = json.loads((tmp_path / "g" / "qk.json").read_text())
    assert qk[0]["key_pos"] == first + 1 and len(qk[0]["top_terms"]) == 10
    assert {"graph.safetensors", "graph.json", "graph.html", "qk.json", "manifest.json", "graph-metadata.json"} <= {
        p.name for p in (tmp_path / "g").iterdir()}
    assert AttributionGraph.load(tmp_path / "g").n_features == summary["active_features"]


def test_a_slug_that_would_overwrite_the_graphs_own_files_is_refused(tmp_path, relu_gpt2, exact_transcoders):
    from mechscope.circuits.graphs import GraphError, trace

    with pytest.raises(GraphError, match="slug 'graph' would name"):
        trace(relu_gpt2, exact_transcoders, torch.tensor([3, 7, 11]), tmp_path / "g", slug="graph")
    assert not (tmp_path / "g").exists()  # refused before anything is written


def test_a_saved_transcoder_set_traces_the_same_graph(tmp_path, relu_gpt2, exact_transcoders):
    from mechscope.circuits.graphs import GraphConfig, attribute, load_transcoder_directory
    from mechscope.dictionaries import TranscoderSet
    from tests.circuits.graphs.conftest import EXACT_INPUT, exact_transcoder

    dictionaries = []
    for layer in (0, 1):
        transcoder = exact_transcoder(relu_gpt2, layer)
        transcoder.cfg.hook_name = EXACT_INPUT.format(layer=layer)
        transcoder.cfg.hook_name_out = f"blocks.{layer}.hook_mlp_out"
        dictionaries.append(transcoder)
    loaded = load_transcoder_directory(TranscoderSet(dictionaries, [0, 1]).save(tmp_path / "set"))
    assert (loaded.input_hook, loaded.output_hook, loaded.layers) == (EXACT_INPUT, "blocks.{layer}.hook_mlp_out",
                                                                      [0, 1])
    prompt = torch.tensor([3, 7, 11, 3, 7])
    expected, got = (attribute(relu_gpt2, t, prompt, GraphConfig(zero_bos=False)) for t in (exact_transcoders, loaded))
    assert torch.equal(expected.features, got.features) and torch.equal(expected.sources, got.sources)
    torch.testing.assert_close(got.weights, expected.weights, rtol=1e-5, atol=1e-6)
