"""The edge engine and edge attribution: exact identities on tiny models of three families (GQA Llama, GPT-2,
parallel GPT-NeoX) and gradient x activation difference computed by hand."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.circuits.attribution import forward_with_grad
from mechscope.circuits.edge_attribution import (EDGE_METHODS, edge_attribution, flat_nodes, gradient_scores,
                                                 interpolate, set_value, unit_names)
from mechscope.circuits.edge_patching import run_with_edges, source_chunks, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import paired_inputs
from mechscope.errors import MechscopeError
from tests.circuits.test_patching import last_token_metric
from tests.conftest import tiny_hf, token_batch


def tiny_setup(family: str) -> tuple:
    model = mechscope.load_model(tiny_hf(family), device="cpu")
    graph = EdgeGraph.for_model(model)
    clean_in, corrupt_in = paired_inputs(model, token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2))
    metric = last_token_metric(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))
    clean_logits, clean = source_values(model, graph, clean_in)
    corrupt_logits, corrupted = source_values(model, graph, corrupt_in)
    return model, graph, clean_in, corrupt_in, metric, clean_logits, corrupt_logits, clean, corrupted


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])
def setup(request):
    return tiny_setup(request.param)


def test_graph_counts_edges_as_mib_does():
    # GPT-2 small in MIB's circuit track has 32,491 edges (EDGE_COUNTS in MIB_circuit_track/evaluation.py)
    assert EdgeGraph(12, 12, 12).n_edges == 32491
    parallel, sequential = EdgeGraph(3, 4, 4, parallel=True), EdgeGraph(3, 4, 4)
    assert sequential.n_edges - parallel.n_edges == 3 * 4  # a layer's heads do not feed its own MLP
    assert "a0.h1->m0" in sequential.edge_names and "a0.h1->m0" not in parallel.edge_names
    gqa = EdgeGraph(2, 4, 2)
    assert "a0.h3->a1.kv1<k>" in gqa.edge_names and gqa.destination_nodes(gqa.destinations.index("a1.kv1<k>")) == (
        "a1.h2", "a1.h3")


def test_scores_round_trip_through_a_dict_of_edge_names():
    graph = EdgeGraph(3, 4, 2)
    matrix = graph.matrix(torch.randn(graph.n_edges))
    scores = graph.scores_dict(matrix)
    assert set(scores) == set(graph.edge_names)
    assert EdgeGraph.from_edges(scores) == graph
    assert torch.equal(graph.scores_matrix(scores), matrix)
    with pytest.raises(MechscopeError, match="not an edge"):
        graph.scores_matrix({"m2->a0.h0<q>": 1.0})
    with pytest.raises(MechscopeError, match="edge names like"):
        EdgeGraph.from_edges(["a0.h0->a1.h0"])


def test_patching_every_edge_reproduces_the_corrupted_run_and_none_the_clean_run(setup):
    model, graph, clean_in, _, _, clean_logits, corrupt_logits, _, corrupted = setup
    every, none = graph.real.float(), torch.zeros(graph.n_sources, graph.n_destinations)
    logits = run_with_edges(model, graph, clean_in, torch.stack([every, none]), corrupted)
    torch.testing.assert_close(logits[:3], corrupt_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[3:], clean_logits, atol=1e-5, rtol=1e-5)
    assert (clean_logits - corrupt_logits).abs().max() > 0.1


@pytest.mark.parametrize("edge", ["input->logits", "a0.h1->a2.h3<q>", "a1.h0->{kv}<v>", "m0->m1", "a1.h2->m1"])
def test_one_edge_patched_by_the_engine_equals_that_edge_patched_by_hand(setup, edge):
    model, graph, clean_in, _, _, _, _, clean, corrupted = setup
    kv = graph.kv_name(2, 1, "v")[:-3]
    edge = edge.format(kv=kv)
    if edge not in graph.edge_names:  # a1.h2 -> m1 does not exist in parallel blocks
        assert graph.parallel and edge == "a1.h2->m1"
        return
    src, dst = graph.sources.index(edge.split("->")[0]), graph.destinations.index(edge.split("->")[1])
    source = next(g for g in graph.source_groups if g.start <= src < g.stop)
    target = next(g for g in graph.destination_groups if g.start <= dst < g.stop)
    diff = corrupted[source.hook][:, :, src - source.start] - clean[source.hook][:, :, src - source.start]

    def by_hand(act, _name):
        act = act.clone()
        if act.ndim == 4:
            act[:, :, dst - target.start] += diff
        else:
            act += diff
        return act

    with model.hooks({target.hook: by_hand}):
        expected = model(clean_in)
    logits = run_with_edges(model, graph, clean_in, graph.edge_mask([edge]).float(), corrupted)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected, model(clean_in), atol=1e-7, rtol=0)  # the edge does something


def test_eap_equals_gradient_times_activation_difference_by_hand(setup):
    model, graph, clean_in, corrupt_in, metric, *_, clean, corrupted = setup
    hooks = [g.hook for g in graph.destination_groups]
    logits, acts = forward_with_grad(model, clean_in, hooks)
    grads = dict(zip(hooks, torch.autograd.grad(metric(logits.float()).mean(), [acts[h] for h in hooks])))
    expected = torch.zeros(graph.n_sources, graph.n_destinations)
    for src, dst in zip(*graph.edge_index.__iter__()):
        source = next(g for g in graph.source_groups if g.start <= src < g.stop)
        target = next(g for g in graph.destination_groups if g.start <= dst < g.stop)
        diff = corrupted[source.hook][:, :, src - source.start] - clean[source.hook][:, :, src - source.start]
        grad = grads[target.hook]
        grad = grad[:, :, dst - target.start] if grad.ndim == 4 else grad
        expected[src, dst] = (diff * grad).sum()
    scores, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap")
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)
    assert (info["forward_passes"], info["backward_passes"]) == (2, 1)
    assert expected.abs().max() > 1e-3


def test_integrated_gradient_variants_reduce_to_eap_where_their_paths_do(setup):
    """eap-ig-activations with one step sets each node to its clean value, so its gradient is EAP's; eap-ig-inputs
    with one step takes the gradient at the corrupted input, the other half of clean-corrupted."""
    model, graph, clean_in, corrupt_in, metric, *_ = setup
    eap, _ = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap")
    activations, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap-ig-activations", steps=1)
    torch.testing.assert_close(activations, eap, atol=1e-5, rtol=1e-4)
    assert info["backward_passes"] == len(graph.source_groups)
    at_corrupted, _ = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap-ig", steps=1)
    both, _ = edge_attribution(model, graph, clean_in, corrupt_in, metric, "clean-corrupted")
    torch.testing.assert_close(both, (eap + at_corrupted) / 2, atol=1e-5, rtol=1e-4)
    assert (at_corrupted - eap).abs().max() > 1e-3


def test_eap_ig_inputs_is_complete_on_the_embedding(setup):
    """Integrated gradients add up: the embedding's edges sum to m(corrupted) - m(clean) as the steps grow."""
    model, graph, clean_in, corrupt_in, metric, clean_logits, corrupt_logits, *_ = setup
    gap = float(metric(corrupt_logits).mean() - metric(clean_logits).mean())
    errors = []
    for steps in (1, 64):
        scores, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap-ig", steps=steps)
        errors.append(abs(float(scores[0].sum()) - gap))
        assert info["forward_passes"] == 2 + steps
    assert errors[1] < 0.02 * abs(gap) and errors[1] < errors[0]  # the left Riemann sum converges as 1 / steps


@pytest.mark.parametrize("family", ["bert", "gemma2"])
def test_models_whose_heads_do_not_add_to_the_residual_stream_are_refused(family):
    model = mechscope.load_model(tiny_hf(family), device="cpu")
    with pytest.raises(MechscopeError, match="pre-norm blocks"):
        EdgeGraph.for_model(model)


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_source_chunks_give_the_scores_of_one_pass(family):
    """Memory mode: holding the sources a few at a time (passes repeated per chunk) changes no score, under GQA
    and in parallel-residual blocks."""
    model, graph, clean_in, corrupt_in, metric, *_ = tiny_setup(family)
    for method in EDGE_METHODS:
        whole, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, method, steps=2)
        chunked, chunked_info = edge_attribution(model, graph, clean_in, corrupt_in, metric, method, steps=2,
                                                 source_chunk=3)
        torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
        assert info["source_chunks"] == 1 and chunked_info["source_chunks"] == len(source_chunks(graph, 3)) > 3
        assert whole.abs().max() > 1e-3


def test_ig_activations_edges_of_a_group_add_up_to_patching_the_group():
    """Completeness per path: the edges out of a node group, integrated along the path the group's output takes
    (as eap-ig-activations scores them), sum to the effect of patching every edge out of it (the right Riemann
    sum over 32 steps is within a few percent on tiny Llama)."""
    model, graph, clean_in, _, metric, clean_logits, _, clean, corrupted = tiny_setup("llama")
    group = graph.source_groups[3]  # the heads of layer 1
    outgoing = torch.zeros(graph.n_sources, graph.n_destinations, dtype=torch.bool)
    outgoing[group.start:group.stop] = True
    patched = run_with_edges(model, graph, clean_in, (outgoing & graph.real).float(), corrupted)
    effect = float(metric(patched.detach()).mean() - metric(clean_logits).mean())
    diffs = {group.hook: flat_nodes(corrupted[group.hook] - clean[group.hook])}
    total = 0.0
    for k in range(1, 33):
        hook = (group.hook, set_value(interpolate(clean[group.hook], corrupted[group.hook], k / 32)))
        total += float(gradient_scores(model, graph, clean_in, metric, [group], diffs=diffs, extra_hooks=(hook,))[0]
                       .sum()) / 32
    assert total == pytest.approx(effect, rel=0.06) and abs(effect) > 1e-2


@pytest.mark.parametrize("method", ["eap", "eap-ig-activations"])
def test_node_scores_are_the_sums_of_their_outgoing_edge_scores(setup, method):
    """Gradient attribution is linear in the differences: patching a node is patching every edge out of it."""
    model, graph, clean_in, corrupt_in, metric, *_ = setup
    edges, _ = edge_attribution(model, graph, clean_in, corrupt_in, metric, method, steps=2)
    nodes, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, method, steps=2, level="node")
    torch.testing.assert_close(nodes, edges.sum(1), atol=1e-5, rtol=1e-4)
    assert nodes.shape == (graph.n_sources,) and info["level"] == "node" and nodes.abs().max() > 1e-3


def test_neuron_scores_equal_gradient_times_hidden_difference_by_hand(setup):
    model, graph, clean_in, corrupt_in, metric, *_ = setup
    hooks = [f"blocks.{layer}.mlp.hook_post" for layer in range(model.n_layers)]
    _, corrupted = model.run_with_cache(corrupt_in, hooks)
    logits, acts = forward_with_grad(model, clean_in, hooks)
    grads = torch.autograd.grad(metric(logits.float()).mean(), [acts[h] for h in hooks])
    expected = torch.cat([((corrupted[h] - acts[h].detach()) * g).sum((0, 1)) for h, g in zip(hooks, grads)])
    scores, info = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap", level="neuron")
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)
    chunked, _ = edge_attribution(model, graph, clean_in, corrupt_in, metric, "eap", level="neuron", source_chunk=1)
    torch.testing.assert_close(chunked, scores, atol=1e-5, rtol=1e-4)
    assert len(unit_names(graph, model, "neuron")) == len(scores) and expected.abs().max() > 1e-3
