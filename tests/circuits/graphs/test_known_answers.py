"""Known answers with trained transcoders: every node's inputs, errors included, add up to its value; influence
and completeness agree with the matrix-inverse definition; pruning keeps a planted path; on the induction organism
the graph routes the prediction from the token after the first occurrence."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.graphs import AttributionGraph, GraphConfig, attribute, graph_scores, node_influence, prune
from mechscope.circuits.graphs.influence import logit_weights

from tests.circuits.graphs.conftest import fit_transcoders, frozen_values

PROMPT = torch.tensor([3, 17, 8, 42, 17, 8, 5, 11])


@pytest.fixture(scope="module")
def trained(relu_gpt2):
    texts = torch.randint(0, 50, (64, 16), generator=torch.Generator().manual_seed(1))
    transcoders = fit_transcoders(relu_gpt2, texts, [0, 1], d_sae=128, k=6, steps=300)
    return transcoders, attribute(relu_gpt2, transcoders, PROMPT, GraphConfig(zero_bos=False))


def test_inputs_with_errors_add_up_to_each_targets_value(relu_gpt2, trained):
    """Value = sum of inputs (features, errors, tokens) + bias terms (the value with every node zeroed)."""
    transcoders, graph = trained
    clean_pre, clean_logits = frozen_values(relu_gpt2, transcoders, PROMPT, {}, 1)
    bias_pre, bias_logits = frozen_values(relu_gpt2, transcoders, PROMPT, {}, 1, zero_sources=True)
    dense = graph.dense()
    for index in range(graph.n_features):
        layer, pos, latent = graph.features[index].tolist()
        value = clean_pre[layer][0, pos, latent] - bias_pre[layer][0, pos, latent]
        assert float(dense[index].sum()) == pytest.approx(float(value), abs=2e-4 * (1 + abs(float(value))))
    for i, token in enumerate(graph.logit_tokens.tolist()):
        value = clean_logits[0, token] - bias_logits[0, token]
        assert float(dense[graph.logit_index(i)].sum()) == pytest.approx(float(value), abs=1e-3)
    errors = dense[:, graph.error_start:graph.token_start].abs().sum()
    assert errors > 0.05 * dense.abs().sum()  # a trained transcoder leaves real error for the accounting to carry


def test_influence_and_completeness_match_the_matrix_inverse(trained):
    _, graph = trained
    normalized = graph.dense().abs()
    normalized /= normalized.sum(1, keepdim=True).clamp_min(1e-10)
    weights = logit_weights(graph)
    total = weights @ (torch.linalg.inv(torch.eye(graph.n_nodes) - normalized) - torch.eye(graph.n_nodes))
    torch.testing.assert_close(node_influence(graph), total, atol=1e-5, rtol=1e-4)
    error_share = normalized[:, graph.error_start:graph.token_start].sum(1)
    completeness = ((1 - error_share) * (total + weights)).sum() / (total + weights).sum()
    token, error = total[graph.token_start:graph.logit_start].sum(), total[graph.error_start:graph.token_start].sum()
    scores = graph_scores(graph)
    assert scores.completeness == pytest.approx(float(completeness), abs=1e-5)
    assert scores.replacement == pytest.approx(float(token / (token + error)), abs=1e-5)
    assert 0.2 < scores.replacement < scores.completeness < 1.0


def test_pruning_keeps_the_planted_path_and_drops_weak_nodes():
    """token 0 -> feature A -> logit carries nearly everything; feature B feeds the logit a thousandth as much."""
    features = torch.tensor([[0, 0, 7], [0, 1, 9]])  # A at pos 0, B at pos 1
    graph = AttributionGraph(
        tokens=torch.tensor([5, 6]), token_labels=["a", "b"], features=features, activations=torch.ones(2),
        n_layers=1, logit_tokens=torch.tensor([3]), logit_labels=["c"], logit_probabilities=torch.tensor([1.0]),
        logit_values=torch.tensor([2.0]), targets=torch.tensor([0, 1, 6, 6]), sources=torch.tensor([4, 5, 0, 1]),
        weights=torch.tensor([2.0, 1.0, 3.0, 0.003]))  # nodes: A B, errors 2 3, tokens 4 5, logit 6
    pruned = prune(graph, node_threshold=0.8, edge_threshold=0.98)
    assert pruned.node_mask.tolist() == [True, False, False, False, True, True, True]
    assert pruned.edge_mask.tolist() == [True, False, True, False]


@pytest.mark.parametrize("transcoders_of", ["induction", "induction_clt"])
def test_induction_graph_routes_the_prediction_from_the_token_after_the_first_occurrence(request, transcoders_of):
    organism, transcoders, prompt, first = request.getfixturevalue(transcoders_of)
    model = organism.model
    # the last token repeats the one at position `first`; the model should copy what followed it
    assert int(prompt[-1]) == int(prompt[first])
    graph = attribute(model, transcoders, prompt, GraphConfig(max_logits=1))
    assert int(graph.logit_tokens[0]) == int(prompt[first + 1])
    influence = node_influence(graph)
    tokens = influence[graph.token_start:graph.logit_start]
    assert int(tokens.argmax()) == first + 1
    assert tokens[first + 1] > 2 * tokens[torch.arange(len(tokens)) != first + 1].max()
    pruned = prune(graph)
    kept = pruned.node_mask.nonzero().squeeze(1).tolist()
    # the answer token's embedding reaches the logit in the pruned graph: directly, or through kept nodes
    into_logit = {int(s) for s in graph.sources[pruned.edge_mask & (graph.targets == graph.logit_index(0))]}
    assert into_logit and graph.token_index(first + 1) in kept
