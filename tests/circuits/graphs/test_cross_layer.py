"""Attribution graphs over a cross-layer transcoder: with zero cross-layer decoders it is the per-layer graph; with
real cross-layer writes every edge is the finite-difference direct effect summed over the MLP outputs a feature
writes to, and a logit's inputs still add up to its value; saved CLT files trace the same graph."""

from __future__ import annotations

import copy

import pytest
import torch

from mechscope.circuits.graphs import CrossLayerTranscoders, GraphConfig, attribute, load_transcoder_directory

from tests.circuits.graphs.conftest import exact_clt, frozen_values, random_clt, removal_effects

PROMPT = torch.tensor([3, 17, 8, 42, 17, 8, 5, 11])
CONFIG = GraphConfig(batch_size=32, zero_bos=False)


@pytest.fixture(scope="module")
def clt(relu_gpt2):
    return random_clt(relu_gpt2)


@pytest.fixture(scope="module")
def clt_graph(relu_gpt2, clt):
    return attribute(relu_gpt2, clt, PROMPT, CONFIG)


def test_a_clt_without_cross_layer_decoders_gives_the_per_layer_graph(relu_gpt2, exact_transcoders):
    per_layer = attribute(relu_gpt2, exact_transcoders, PROMPT, CONFIG)
    cross_layer = attribute(relu_gpt2, exact_clt(exact_transcoders), PROMPT, CONFIG)
    assert torch.equal(cross_layer.features, per_layer.features) and per_layer.n_features > 50
    torch.testing.assert_close(cross_layer.activations, per_layer.activations)
    torch.testing.assert_close(cross_layer.dense(), per_layer.dense(), atol=1e-5, rtol=1e-4)
    assert cross_layer.info["transcoders"] == "cross-layer" and per_layer.info["transcoders"] == "per-layer"


def test_clt_edges_equal_finite_difference_direct_effects_through_every_layer_written(relu_gpt2, clt, clt_graph):
    graph = clt_graph
    assert {0, 1} <= set(graph.features[:, 0].tolist())
    layer0 = (graph.features[:, 0] == 0).nonzero().squeeze(1)
    sources = layer0[torch.randperm(len(layer0), generator=torch.Generator().manual_seed(0))[:30]].tolist()
    sources += list(range(graph.token_start, graph.logit_start))
    on_features, on_logits = removal_effects(relu_gpt2, clt, graph, PROMPT, sources)
    dense = graph.dense()
    torch.testing.assert_close(dense[:graph.n_features, sources].T, on_features,
                               atol=1e-4 * on_features.abs().max(), rtol=1e-3)
    torch.testing.assert_close(dense[graph.logit_start:, sources].T, on_logits, atol=1e-4 * on_logits.abs().max(),
                               rtol=1e-3)
    # the layer-0 features' writes to layer 1 carry a real part of their effect on the logits
    same_layer = copy.deepcopy(clt)
    with torch.no_grad():
        same_layer.clt.W_dec[0][:, 1:].zero_()
    _, same_layer_logits = removal_effects(relu_gpt2, same_layer, graph, PROMPT, sources[:30])
    assert (same_layer_logits - on_logits[:30]).abs().max() > 0.1 * on_logits[:30].abs().max()


def test_clt_logit_inputs_with_errors_plus_bias_terms_sum_to_its_value(relu_gpt2, clt, clt_graph):
    graph = clt_graph
    _, bias = frozen_values(relu_gpt2, clt, PROMPT, {}, 1, zero_sources=True)
    _, clean = frozen_values(relu_gpt2, clt, PROMPT, {}, 1)
    errors = (graph.sources >= graph.error_start) & (graph.sources < graph.token_start)
    assert graph.weights[errors].abs().max() > 0.1  # a random CLT leaves real error nodes
    for i, token in enumerate(graph.logit_tokens.tolist()):
        _, weights = graph.inputs(graph.logit_index(i))
        assert float(graph.logit_values[i]) == pytest.approx(float(clean[0, token]), abs=1e-4)
        assert float(weights.sum() + bias[0, token]) == pytest.approx(float(graph.logit_values[i]), abs=1e-3)


def test_saved_clt_files_trace_the_same_graph(tmp_path, relu_gpt2, clt, clt_graph):
    loaded = load_transcoder_directory(clt.clt.save(tmp_path / "clt"))
    assert isinstance(loaded, CrossLayerTranscoders) and loaded.input_hook == clt.input_hook
    torch.testing.assert_close(attribute(relu_gpt2, loaded, PROMPT, CONFIG).dense(), clt_graph.dense())


def test_graph_verb_traces_the_organisms_clt_directory(tmp_path, induction_clt, capsys):
    import json

    from mechscope.circuits.graphs import AttributionGraph
    from mechscope.cli import main
    from mechscope.toy import OrganismTranscoderConfig, organism_transcoders_path

    organism, transcoders, prompt, first = induction_clt
    directory = organism_transcoders_path("induction", "small", OrganismTranscoderConfig(cross_layer=True))
    text = organism.model.to_string(prompt[1:])
    assert main(["graph", str(organism.path), str(directory), text, "--out", str(tmp_path / "g"), "--device", "cpu",
                 "--max-logits", "1", "--slug", "induction-clt", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["targets"] == [organism.model.to_str_tokens([int(prompt[first + 1])])[0]]
    graph = AttributionGraph.load(tmp_path / "g")
    assert graph.info["transcoders"] == "cross-layer"
    expected = attribute(organism.model, transcoders, prompt, GraphConfig(max_logits=1))
    torch.testing.assert_close(graph.dense(), expected.dense())
