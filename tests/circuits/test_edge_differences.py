"""The edge engine's memory mode (running sums of fully patched sources, mixed sources held alone) gives the
outputs of holding every source's difference, on three families, for 0/1, fractional and stacked masks and for
resumed passes; it holds only what `held_counts` says."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.edge_differences import SourceDifferences, held_counts
from mechscope.circuits.edge_patching import as_nodes, edge_hooks, flat_differences, memory_estimate, run_with_edges
from mechscope.circuits.graph import EdgeGraph
from tests.circuits.test_edges import tiny_setup


def every_source_held(model, graph, inputs, mask, replacement):
    """The reference: every source's difference kept for the whole pass, each destination summing all upstream."""
    copies, diffs = len(mask), {}

    def read(act, name):
        diffs[name] = replacement[name][None] - as_nodes(act).unflatten(0, (copies, -1))

    def write(act, _name, group):
        nodes = as_nodes(act).unflatten(0, (copies, -1))
        for source in graph.source_groups:
            if source.stop <= group.upstream:
                weights = mask[:, source.start:source.stop, group.start:group.stop]
                nodes = nodes + torch.einsum("cns,cbpnd->cbpsd", weights, diffs[source.hook])
        return nodes.flatten(0, 1).reshape(act.shape)
    hooks = [(g.hook, read) for g in graph.source_groups]
    hooks += [(g.hook, lambda act, name, g=g: write(act, name, g)) for g in graph.destination_groups]
    with torch.no_grad(), model.hooks(hooks):
        return model({k: v.repeat(copies, 1) for k, v in inputs.items()})


def planted_masks(graph: EdgeGraph, seed: int = 0) -> torch.Tensor:
    """Four stacked masks: random 0/1 edges; rows each fully patched, untouched or mixed; fractional; a circuit's
    complement (its nodes mixed, every other source fully patched)."""
    gen = torch.Generator().manual_seed(seed)
    real = graph.real.float()
    binary = (torch.rand(real.shape, generator=gen) < 0.5).float() * real
    kind = torch.randint(0, 3, (graph.n_sources, 1), generator=gen)
    rows = torch.where(kind == 0, real, torch.where(kind == 1, torch.zeros_like(real), binary))
    fractional = torch.rand(real.shape, generator=gen) * real
    circuit = torch.zeros_like(real, dtype=torch.bool)
    circuit[[0, 2, graph.n_sources - 3], -1] = True
    circuit[1, graph.n_destinations // 2] = True
    return torch.stack([binary, rows, fractional, real * ~circuit])


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])
def setup(request):
    model, graph, clean_in, *_, clean, corrupted = tiny_setup(request.param)
    return model, graph, clean_in, clean, corrupted


def test_memory_mode_equals_holding_every_source(setup):
    model, graph, inputs, _, corrupted = setup
    masks = planted_masks(graph)
    expected = every_source_held(model, graph, inputs, masks, corrupted)
    with torch.no_grad():
        stacked = run_with_edges(model, graph, inputs, masks, corrupted)
        alone = [run_with_edges(model, graph, inputs, mask, corrupted) for mask in masks]
    torch.testing.assert_close(stacked, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(alone), expected, atol=1e-5, rtol=1e-5)
    assert (expected[:3] - expected[9:]).abs().max() > 0.1  # the masks patch something different


def test_resumed_pass_with_known_differences_equals_the_full_forward(setup):
    model, graph, inputs, clean, corrupted = setup
    masks = planted_masks(graph, seed=1)
    masks[:, :, graph.upstream <= graph.source_groups[2].start] = 0  # nothing into block 0 is patched
    diffs = flat_differences(corrupted, clean)
    known = {g.hook: diffs[g.hook] for g in graph.source_groups[:3]}  # the embedding and block 0
    run = model.record(inputs)
    with torch.no_grad(), model.hooks(edge_hooks(graph, masks, corrupted, known=known)):
        resumed = model.resume(run, len(masks), layer=1)
    torch.testing.assert_close(resumed, run_with_edges(model, graph, inputs, masks, corrupted), atol=1e-5, rtol=1e-5)


def test_gradient_reaches_every_mask_entry(setup):
    model, graph, inputs, _, corrupted = setup
    mask = planted_masks(graph)[1].requires_grad_()  # full and untouched rows: held like mixed ones under grad
    run_with_edges(model, graph, inputs, mask, corrupted).float().pow(2).mean().backward()
    assert bool((mask.grad[graph.real] != 0).float().mean() > 0.9)


def execution_order(graph: EdgeGraph) -> list[tuple[str, object]]:
    """Sources and destinations in the order a forward reaches them (in parallel blocks the MLP input is read
    after the attention has run, though the attention is not upstream of it)."""
    sources, destinations = graph.source_groups, graph.destination_groups
    events = [("source", sources[0])]
    for layer in range(graph.n_layers):
        events += [("destination", d) for d in destinations[4 * layer:4 * layer + 3]]
        events += [("source", sources[1 + 2 * layer]), ("destination", destinations[4 * layer + 3]),
                   ("source", sources[2 + 2 * layer])]
    return events + [("destination", destinations[-1])]


@pytest.mark.parametrize("parallel", [True, False])
def test_destinations_see_only_their_upstream_sources_and_only_mixed_rows_are_held(parallel):
    graph = EdgeGraph(2, 2, 2, parallel=parallel)
    width, copies = 5, 2
    diffs = {g.hook: torch.randn(copies, g.size, width) for g in graph.source_groups}
    masks = planted_masks(graph, seed=3)[[1, 3]]  # rows of all three kinds; a circuit's complement
    held = SourceDifferences(graph, masks)
    for kind, group in execution_order(graph):
        if kind == "source":
            held.add(group, diffs[group.hook])
            continue
        expected = sum(torch.einsum("cns,cnw->csw", masks[:, s.start:s.stop, group.start:group.stop], diffs[s.hook])
                       for s in graph.source_groups if s.stop <= group.upstream)
        torch.testing.assert_close(held.into(group).expand_as(expected), expected)
    stored = sum(diff[0].numel() for _, _, diff in held.held) * copies // width
    assert stored == held_counts(graph, masks) < copies * graph.n_sources


def test_estimate_counts_running_sums_and_held_sources(setup):
    model, graph, *_ = setup
    masks = planted_masks(graph)
    worst = memory_estimate(model, graph, 3, 6, grad=False, copies=4)
    held = memory_estimate(model, graph, 3, 6, grad=False, copies=4, held=held_counts(graph, masks))
    token = 3 * 6 * model.info.d_model * 4
    assert worst["source_values_bytes"] - held["source_values_bytes"] == (4 * graph.n_sources
                                                                         - held_counts(graph, masks)) * token
