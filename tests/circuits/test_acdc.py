"""ACDC: the speculative stacked search, resumed at each destination's block, keeps exactly the edges of
one-edge-per-forward ACDC over full forward passes, in fewer passes and fewer blocks."""

from __future__ import annotations

from functools import partial

import pytest
import torch

import mechscope
from mechscope.circuits.acdc import ACDCConfig, acdc, acdc_sweep
from mechscope.circuits.edge_patching import memory_estimate, run_with_edges, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import paired_inputs
from mechscope.errors import MechscopeError
from tests.conftest import tiny_hf, token_batch


@pytest.fixture(scope="module", params=["llama", "gpt_neox"])
def setup(request):
    model = mechscope.load_model(tiny_hf(request.param), device="cpu")
    graph = EdgeGraph.for_model(model)
    clean_in, corrupt_in = paired_inputs(model, token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2))
    clean_logits, _ = source_values(model, graph, clean_in)
    _, corrupted = source_values(model, graph, corrupt_in)
    reference = clean_logits[:, -1].log_softmax(-1)

    def objective(logits):
        rows = logits.shape[0] // len(reference)
        run = logits[:, -1].log_softmax(-1).view(rows, len(reference), -1)
        return (reference.exp() * (reference - run)).sum(-1).flatten()

    return model, graph, clean_in, corrupted, objective


def sequential_acdc(model, graph, inputs, corrupted, objective, tau):
    """Conmy et al.'s loop, one forward pass per edge visited (the reference)."""
    kept = graph.real.clone()

    @torch.no_grad()
    def value(mask):
        return float(objective(run_with_edges(model, graph, inputs, (~mask).float(), corrupted).float()).mean())

    current = value(kept)
    index = {name: i for i, name in enumerate(graph.sources)}
    for dst in reversed(range(graph.n_destinations)):
        nodes = graph.destination_nodes(dst)
        if nodes != ("logits",) and not any(kept[index[n]].any() for n in nodes):
            kept[:, dst] = False
            continue
        for src in reversed(kept[:, dst].nonzero().flatten().tolist()):
            kept[src, dst] = False
            new = value(kept)
            if new - current < tau:
                current = new
            else:
                kept[src, dst] = True
    return kept


REFERENCES: dict = {}


@pytest.mark.parametrize("tau", [3e-4, 3e-3])
@pytest.mark.parametrize("max_copies", [8, 0])  # 0: as many candidate circuits per pass as the memory budget allows
def test_stacked_acdc_keeps_exactly_the_edges_of_sequential_acdc(setup, tau, max_copies):
    model, graph, inputs, corrupted, objective = setup
    result = acdc(model, graph, inputs, corrupted, objective, ACDCConfig(tau=tau, max_copies=max_copies))
    key = (model.info.model_type, tau)
    if key not in REFERENCES:
        REFERENCES[key] = sequential_acdc(model, graph, inputs, corrupted, objective, tau)
    reference = REFERENCES[key]
    assert torch.equal(result.kept, reference)
    assert 0 < int(reference.sum()) < graph.n_edges  # the threshold really prunes, and keeps something
    assert result.rows >= len(result.effects)  # every visited edge was in at least one candidate circuit
    assert result.forward_passes < len(result.effects) / 2  # what the stacking buys even on a tiny graph
    assert result.most_copies <= (max_copies or result.rows)
    if max_copies:  # passes resume at their destinations' blocks (an unlimited one spans every block)
        assert result.blocks < result.rows * model.n_layers
    with torch.no_grad():
        circuit = run_with_edges(model, graph, inputs, (~result.kept).float(), corrupted).float()
    assert float(objective(circuit).mean()) == pytest.approx(result.objective, abs=1e-6)


def test_memory_budget_sets_how_many_candidates_share_a_pass(setup):
    """A budget for two candidate circuits holding every source stacks at least two (more where fewer sources are
    held); a larger one stacks more, in fewer passes, to the same edges."""
    model, graph, inputs, corrupted, objective = setup
    estimate = partial(memory_estimate, model, graph, *inputs["input_ids"].shape, grad=False, known=True, positions=1)
    two = estimate(copies=2)["total_bytes"] / 2**30
    small = acdc(model, graph, inputs, corrupted, objective, ACDCConfig(tau=3e-4, memory_gb=two))
    large = acdc(model, graph, inputs, corrupted, objective, ACDCConfig(tau=3e-4, memory_gb=100 * two))
    assert 2 <= small.most_copies < large.most_copies
    assert large.forward_passes < small.forward_passes
    assert torch.equal(small.kept, large.kept)
    with pytest.raises(MechscopeError, match="memory_gb > 0"):
        acdc(model, graph, inputs, corrupted, objective, ACDCConfig(memory_gb=0))


def test_sweep_ranks_edges_by_the_largest_threshold_that_keeps_them(setup):
    model, graph, inputs, corrupted, objective = setup
    scores, runs = acdc_sweep(model, graph, inputs, corrupted, objective, taus=[1e-3, 1e-2])
    assert [r.graph for r in runs] == [graph, graph]
    for edge in runs[1].edges:
        assert scores[edge] == 1e-2
    assert {e for e, s in scores.items() if s > 0} == runs[0].edges | runs[1].edges
    with pytest.raises(MechscopeError, match="at least one threshold"):
        acdc_sweep(model, graph, inputs, corrupted, objective, taus=[])
