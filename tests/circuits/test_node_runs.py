"""Neuron circuits: the metric with every MLP neuron outside the circuit patched equals the same patch by hand,
and `circuit eval DIR` re-measures saved node and neuron circuits."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.edge_attribution import neuron_groups
from mechscope.circuits.edge_runs import task_inputs
from mechscope.circuits.node_runs import NodeCircuit, neuron_metrics
from mechscope.circuits.task_runs import task_metric
from mechscope.errors import MechscopeError
from mechscope.tasks import make_task


def test_neuron_circuit_metric_equals_patching_the_other_neurons_by_hand(small_organism):
    model = small_organism("ioi").model
    batch = make_task("ioi").batch(model.tokenizer, 8)
    groups = neuron_groups(model)
    kept = torch.zeros(3, sum(g.size for g in groups), dtype=torch.bool)
    kept[0] = True
    kept[2, [3, groups[-1].start + 5, groups[-1].start + 9]] = True
    values = neuron_metrics(model, batch, kept, max_rows=16)  # two circuits per pass, then one
    clean_in, corrupt_in = task_inputs(model, batch)
    _, corrupted = model.run_with_cache(corrupt_in, [g.hook for g in groups])
    metric = task_metric(model, batch, "logit_diff")

    def by_hand(keep):
        def hook(act, name):
            group = groups[model.layer_of(name)]
            return torch.where(keep[group.start:group.stop], act, corrupted[name])
        with torch.no_grad(), model.hooks([(g.hook, hook) for g in groups]):
            return float(metric(model(clean_in).float()).mean())

    expected = [by_hand(row) for row in kept]
    assert values.tolist() == pytest.approx(expected, abs=1e-4)
    assert abs(expected[0] - expected[1]) > 0.1  # patching every neuron changes the answer
    with pytest.raises(MechscopeError, match="patching or zero"):
        neuron_metrics(model, batch, kept, ablation="mean")


def test_circuit_eval_re_measures_saved_node_and_neuron_circuits(small_organism, tmp_path, capsys):
    from tests.circuits.test_cli import run

    path = str(small_organism("ioi").path)
    for level in ("node", "neuron"):
        out = tmp_path / level
        found = run(["circuit", path, "--task", "ioi", "--prompts", "16", "--method", "eap", "--level", level,
                     "--nodes", "5", "--out", str(out)], capsys)
        saved = NodeCircuit.load(out)
        assert saved.level == level and saved.circuit == found["circuit"]
        again = run(["circuit", "eval", str(out)], capsys)
        assert again["level"] == level
        assert [p["faithfulness"] for p in again["points"]] == pytest.approx(
            [p["faithfulness"] for p in saved.curve["points"]], abs=1e-5)
        assert again["points"][-1][f"{level}s"] == 5
    with pytest.raises(MechscopeError, match="holds no node or neuron circuit"):
        NodeCircuit.load(tmp_path / "missing")
