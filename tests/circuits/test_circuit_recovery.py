"""Edge methods against circuits known exactly: the hand-built induction transformer and the induction organism."""

from __future__ import annotations

import json

import pytest

from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_runs import acdc_edges, attribute_edges, find_circuit
from mechscope.circuits.edge_truth import edge_roc_auc
from mechscope.tasks import make_task
from mechscope.toy.handbuilt import handbuilt_circuit, handbuilt_model
from mechscope.toy.induction_circuit import induction_circuit


@pytest.fixture(scope="module")
def handbuilt():
    model = handbuilt_model()
    return model, make_task("induction").batch(model.tokenizer, n=16)


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_gradient_methods_rank_the_planted_edges_first(handbuilt, method):
    model, batch = handbuilt
    graph, scores, _ = attribute_edges(model, batch, method)
    assert edge_roc_auc(graph.scores_dict(scores), handbuilt_circuit()) >= 0.95


def test_acdc_keeps_exactly_the_planted_circuit_in_few_passes(handbuilt):
    model, batch = handbuilt
    config = EdgeCircuitConfig(task="induction", method="acdc", tau=0.01, metric="kl_to_clean")
    found = find_circuit(model, batch, config, curve=False)
    assert found.circuit == set(handbuilt_circuit())
    assert edge_roc_auc(found.scores, handbuilt_circuit()) == 1.0
    assert found.info["forward_passes"] * 5 < found.info["naive_forward_passes"]


def test_acdc_finds_the_organisms_induction_circuit(small_organism):
    model = small_organism("induction").model
    truth = induction_circuit(model, with_inputs=True)
    batch = make_task("induction").batch(model.tokenizer, n=32)
    graph, scores, kept, info = acdc_edges(model, batch, EdgeCircuitConfig(method="acdc", tau=0.03,
                                                                           metric="kl_to_clean"))
    assert edge_roc_auc(graph.scores_dict(scores), truth) >= 0.9
    assert {e for e in truth if e.endswith("->logits")} <= graph.edges_in(kept)
    # candidate circuits stacked up to the memory budget (110 here): >= 10x fewer passes than one per edge
    assert info["forward_passes"] * 10 <= info["naive_forward_passes"] and info["most_stacked"] > 64


def test_acdc_needs_ten_times_fewer_passes_than_one_forward_per_edge_on_the_ioi_organism(small_organism):
    model = small_organism("ioi").model
    batch = make_task("ioi").batch(model.tokenizer, n=4)
    config = EdgeCircuitConfig(method="acdc", tau=0.03, metric="kl_to_clean")
    graph, _, kept, info = acdc_edges(model, batch, config)
    assert info["forward_passes"] * 10 <= info["naive_forward_passes"] and 0 < int(kept.sum()) < graph.n_edges
    assert info["candidate_circuits"] >= info["edges_visited"]


def test_eap_ig_activations_finds_the_organisms_induction_circuit(small_organism):
    """Where the truth acts through attention scores (K-composition, the induction query), gradients at the clean
    run see saturated softmaxes: EAP scores ROC AUC 0.64, EAP-IG-inputs 0.62. Integrating along each source's own
    path, on KL to the clean run, ranks it as patching each edge alone does (0.97)."""
    model = small_organism("induction").model
    truth = induction_circuit(model, with_inputs=True)
    batch = make_task("induction").batch(model.tokenizer, n=32)
    graph, scores, _ = attribute_edges(model, batch, "eap-ig-activations", metric="kl_to_clean")
    assert edge_roc_auc(graph.scores_dict(scores), truth) >= 0.9
    graph, scores, _ = attribute_edges(model, batch, "eap", metric="logit_diff")
    assert edge_roc_auc(graph.scores_dict(scores), truth) < 0.8


def test_circuit_verb_runs_acdc_on_a_saved_hand_built_model_and_prints_memory_estimates(tmp_path, capsys):
    from mechscope.cli import main
    from mechscope.toy.handbuilt import save_handbuilt

    path, out = str(save_handbuilt(tmp_path / "handbuilt")), tmp_path / "acdc"
    assert main(["circuit", path, "--task", "induction", "--prompts", "16", "--method", "acdc", "--tau", "0.01",
                 "--metric", "kl_to_clean", "--edges", "50", "--out", str(out), "--json", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    found = json.loads(lines[-1])
    assert found["circuit_edges"] == len(handbuilt_circuit()) and found["info"]["method"] == "acdc"
    saved = json.loads((out / "circuit.json").read_text())
    assert set(saved["edges"]) == set(handbuilt_circuit())
    printed = "\n".join(lines[:-1])  # the estimates come before the search and before the faithfulness curve
    assert "acdc (tau 0.01)" in printed and "per stacked candidate circuit" in printed
    assert "faithfulness:" in printed and "estimated memory per pass" in printed.split("faithfulness:")[1]


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_top_nodes_of_the_hand_built_model_are_its_planted_heads(handbuilt, method):
    from mechscope.circuits.node_runs import node_faithfulness, top_nodes
    from mechscope.toy.handbuilt import HandBuiltConfig

    model, batch = handbuilt
    cfg = HandBuiltConfig()
    planted = {f"a0.h{cfg.previous_token_head}", f"a1.h{cfg.induction_head}"}
    graph, scores, info = attribute_edges(model, batch, method, level="node")
    assert set(top_nodes(graph, scores, 2)) == planted and info["level"] == "node"
    curve = node_faithfulness(model, batch, graph, scores, [1, 2])
    assert curve["points"][1]["faithfulness"] == pytest.approx(1.0, abs=1e-3)  # the planted heads do it all
    assert curve["points"][0]["faithfulness"] < 0.5


def test_circuit_verb_scores_nodes_and_neurons(tmp_path, capsys):
    from mechscope.toy.handbuilt import HandBuiltConfig, save_handbuilt
    from tests.circuits.test_cli import run

    cfg = HandBuiltConfig()
    path = str(save_handbuilt(tmp_path / "handbuilt"))
    nodes = run(["circuit", path, "--task", "induction", "--prompts", "16", "--method", "eap", "--level", "node",
                 "--nodes", "2", "--out", str(tmp_path / "nodes")], capsys)
    assert set(nodes["circuit"]) == {f"a0.h{cfg.previous_token_head}", f"a1.h{cfg.induction_head}"}
    assert nodes["info"]["faithfulness"] == pytest.approx(1.0, abs=1e-3)
    saved = json.loads((tmp_path / "nodes" / "nodes.json").read_text())
    assert saved["level"] == "node" and saved["circuit"] == nodes["circuit"]
    neurons = run(["circuit", path, "--task", "induction", "--prompts", "16", "--method", "eap", "--level",
                   "neuron", "--no-curve"], capsys)
    assert neurons["level"] == "neuron" and all(t["unit"].startswith("m") for t in neurons["top"])


def test_acdc_sweep_ranks_by_the_largest_threshold_that_keeps_each_edge(tmp_path, capsys):
    """The planted edges survive thresholds 0.01 and 0.1 and nothing else survives either: they score the largest
    tau; every other edge scores below the smallest one (its effect breaks ties), from the CLI's --taus."""
    from mechscope.toy.handbuilt import save_handbuilt
    from tests.circuits.test_cli import run

    path, out = str(save_handbuilt(tmp_path / "handbuilt")), tmp_path / "sweep"
    found = run(["circuit", path, "--task", "induction", "--prompts", "8", "--method", "acdc", "--tau", "0.01",
                 "--taus", "0.1", "--metric", "kl_to_clean", "--no-curve", "--out", str(out)], capsys)
    assert found["info"]["taus"] == [0.1, 0.01] and len(found["info"]["sweep"]) == 2
    assert found["info"]["sweep_forward_passes"] == sum(run["forward_passes"] for run in found["info"]["sweep"])
    scores = json.loads((out / "scores.json").read_text())["scores"]
    planted = set(handbuilt_circuit())
    assert min(scores[e] for e in planted) >= 0.1
    assert max(abs(v) for e, v in scores.items() if e not in planted) < 0.01


def test_acdc_thresholds_must_be_positive():
    from mechscope.errors import MechscopeError

    with pytest.raises(MechscopeError, match=r"tau and taus must be > 0, got tau=0.01, taus=\(0.1, 0.0\)"):
        EdgeCircuitConfig(method="acdc", taus=(0.1, 0.0))
