"""Known answers for attribution graphs on an exact transcoder: edges are finite-difference direct effects in the
frozen-attention model, and a logit's inputs plus the model's bias terms add up to its value."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.graphs import AttributionGraph, GraphConfig, attribute, direction_target, graph_scores
from mechscope.circuits.graphs.replacement import GraphError, Transcoders

from tests.circuits.graphs.conftest import frozen_values, removal_effects

PROMPT = torch.tensor([3, 17, 8, 42, 17, 8, 5, 11])


@pytest.fixture(scope="module")
def exact_graph(relu_gpt2, exact_transcoders):
    return attribute(relu_gpt2, exact_transcoders, PROMPT, GraphConfig(batch_size=32))


def test_exact_transcoder_leaves_error_nodes_zero(exact_graph):
    errors = (exact_graph.sources >= exact_graph.error_start) & (exact_graph.sources < exact_graph.token_start)
    assert exact_graph.weights[errors].abs().max() < 1e-4
    assert exact_graph.n_features > 50


def test_edges_equal_finite_difference_direct_effects(relu_gpt2, exact_transcoders, exact_graph):
    graph = exact_graph
    generator = torch.Generator().manual_seed(0)
    feature_sources = torch.randperm(graph.n_features, generator=generator)[:40].tolist()
    sources = feature_sources + list(range(graph.token_start, graph.logit_start))
    on_features, expected_logit = removal_effects(relu_gpt2, exact_transcoders, graph, PROMPT, sources)
    dense = graph.dense()
    layer1 = (graph.features[:, 0] == 1).nonzero().squeeze(1)
    expected_feature = on_features[:, layer1]  # [sources, layer-1 features]
    got_feature = dense[layer1][:, sources].T
    got_logit = dense[graph.logit_start:][:, sources].T
    scale = expected_logit.abs().max()
    assert scale > 0.1 and expected_feature.abs().max() > 0.1
    torch.testing.assert_close(got_logit, expected_logit, atol=1e-4 * scale, rtol=1e-3)
    torch.testing.assert_close(got_feature, expected_feature, atol=1e-4 * expected_feature.abs().max(), rtol=1e-3)


def test_logit_inputs_plus_bias_terms_sum_to_its_value(relu_gpt2, exact_transcoders, exact_graph):
    """Bias terms: positional embeddings, attention and norm biases, b_dec: the value with every node zeroed."""
    graph = exact_graph
    _, bias = frozen_values(relu_gpt2, exact_transcoders, PROMPT, {}, 1, zero_sources=True)
    _, clean = frozen_values(relu_gpt2, exact_transcoders, PROMPT, {}, 1)
    for i, token in enumerate(graph.logit_tokens.tolist()):
        _, weights = graph.inputs(graph.logit_index(i))
        assert float(graph.logit_values[i]) == pytest.approx(float(clean[0, token]), abs=1e-4)
        assert float(weights.sum() + bias[0, token]) == pytest.approx(float(graph.logit_values[i]), abs=1e-3)


def test_sparse_rows_keep_each_targets_strongest_edges(relu_gpt2, exact_transcoders, exact_graph):
    sparse = attribute(relu_gpt2, exact_transcoders, PROMPT, GraphConfig(batch_size=32, edges_per_row=5))
    dense = exact_graph.dense()
    for index in [sparse.logit_index(0), sparse.n_features - 1]:
        sources, weights = sparse.inputs(index)
        strongest = dense[index].abs().topk(5).indices
        assert sorted(sources.tolist()) == sorted(strongest.tolist())
        torch.testing.assert_close(weights, dense[index, sources])


def test_exact_graph_is_complete_and_round_trips(tmp_path, exact_graph):
    scores = graph_scores(exact_graph)
    assert scores.completeness == pytest.approx(1.0, abs=1e-4)
    assert scores.replacement == pytest.approx(1.0, abs=1e-4)
    loaded = AttributionGraph.load(exact_graph.save(tmp_path / "g"))
    torch.testing.assert_close(loaded.dense(), exact_graph.dense())
    assert loaded.logit_labels == exact_graph.logit_labels


def test_transcoder_of_the_wrong_width_is_refused(relu_gpt2, exact_transcoders):
    from mechscope.dictionaries import Dictionary, DictionaryConfig

    wrong = Transcoders([Dictionary(DictionaryConfig(d_in=16, d_sae=8, k=4))], [0])
    with pytest.raises(GraphError, match="d_model=32"):
        attribute(relu_gpt2, wrong, PROMPT)


def test_capped_feature_rows_are_the_full_graphs_rows(relu_gpt2, exact_transcoders, exact_graph):
    capped = attribute(relu_gpt2, exact_transcoders, PROMPT, GraphConfig(batch_size=8, max_feature_nodes=20))
    rows = capped.targets[capped.targets < capped.n_features].unique()
    assert len(rows) == 20
    torch.testing.assert_close(capped.dense()[rows], exact_graph.dense()[rows])


def test_a_direction_target_equal_to_a_demeaned_unembedding_gives_that_logits_row(relu_gpt2, exact_transcoders,
                                                                                   exact_graph):
    w_u = relu_gpt2.hf.get_output_embeddings().weight.detach()
    token = int(exact_graph.logit_tokens[0])
    graph = attribute(relu_gpt2, exact_transcoders, PROMPT, targets=direction_target(w_u[token] - w_u.mean(0)))
    sources = slice(0, graph.logit_start)  # the graphs differ only in their number of logit nodes
    expected = exact_graph.dense()[graph.logit_start, sources]
    torch.testing.assert_close(graph.dense()[graph.logit_start, sources], expected)
    assert float(graph.logit_values[0]) == pytest.approx(float(exact_graph.logit_values[0]), abs=1e-5)
