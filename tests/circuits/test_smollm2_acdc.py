"""ACDC on SmolLM2-135M IOI (slow): the windowed speculative search needs far fewer forward passes than one
forward per edge, and what it keeps still carries the model's answer distribution."""

from __future__ import annotations

import pytest
import torch

from mechscope import tasks
from mechscope.circuits import EdgeCircuitConfig, evaluate_circuits
from mechscope.circuits.edge_runs import acdc_edges
from mechscope.circuits.faithfulness import faithfulness


@pytest.mark.slow
def test_smollm2_acdc_needs_ten_times_fewer_passes_than_one_forward_per_edge(smollm2):
    batch = tasks.make_task("ioi").batch(smollm2.tokenizer, 2)
    config = EdgeCircuitConfig(method="acdc", tau=0.1, metric="kl_to_clean")
    graph, _, kept, info = acdc_edges(smollm2, batch, config)
    # measured (benchmarks/RESULTS.md): 92 passes against 70,652, 2,704 candidate circuits, ~2 min on 2 cores
    assert info["forward_passes"] * 10 <= info["naive_forward_passes"]
    assert info["candidate_circuits"] < 2 * (info["edges_visited"] + 1)  # few rows wasted on wrong guesses
    values = evaluate_circuits(smollm2, batch, graph, torch.stack([graph.real, torch.zeros_like(kept), kept]),
                               metric="kl_to_clean")
    assert float(values[2]) == pytest.approx(info["objective"], abs=1e-3)  # the search's objective is the circuit's
    assert float(values[0]) == pytest.approx(0.0, abs=1e-4)
    assert float(faithfulness(values[2:], float(values[0]), float(values[1]))[0]) > 0  # closer to the model than empty
