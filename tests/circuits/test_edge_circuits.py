"""Circuit selection, faithfulness, CPR/CMD and saved results; EAP and EAP-IG circuits on the IOI organism."""

from __future__ import annotations

import html

import pytest
import torch

import mechscope
from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_patching import source_values
from mechscope.circuits.edge_results import EdgeCircuit
from mechscope.circuits.edge_runs import find_circuit
from mechscope.circuits.edge_selection import greedy, prune, top_n
from mechscope.circuits.faithfulness import circuit_metrics, cpr_cmd
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.mib import read_mib_circuit
from mechscope.circuits.patching import paired_inputs
from mechscope.errors import MechscopeError
from tests.circuits.test_patching import last_token_metric
from tests.conftest import tiny_hf, token_batch


def test_greedy_grows_from_the_logits_where_top_n_leaves_dangling_edges():
    graph = EdgeGraph(2, 2, 2)
    scores = graph.scores_matrix({"input->a0.h0<q>": 10.0, "a0.h0->a1.h1<k>": -9.0, "m1->logits": 5.0,
                                  "input->m1": 4.0})
    assert graph.edges_in(top_n(graph, scores, 2)) == set()  # a1.h1 reaches no logits: both edges pruned
    assert graph.edges_in(top_n(graph, scores, 4)) == {"m1->logits", "input->m1"}
    assert graph.edges_in(greedy(graph, scores, 2)) == {"m1->logits", "input->m1"}
    with pytest.raises(MechscopeError, match="0 to"):
        top_n(graph, scores, graph.n_edges + 1)


def test_pruning_dangling_edges_changes_no_output_under_patching():
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    graph = EdgeGraph.for_model(model)
    clean_in, corrupt_in = paired_inputs(model, token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2))
    metric = last_token_metric(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))
    _, corrupted = source_values(model, graph, corrupt_in)
    chosen = torch.zeros(graph.n_edges, dtype=torch.bool)
    chosen[torch.randperm(graph.n_edges, generator=torch.Generator().manual_seed(0))[:40]] = True
    raw = graph.matrix(chosen)
    pruned = prune(graph, raw)
    assert 0 < int(pruned.sum()) < 40
    values = circuit_metrics(model, graph, clean_in, corrupted, torch.stack([raw, pruned]), metric)
    torch.testing.assert_close(values[0], values[1], atol=1e-5, rtol=1e-5)


def test_cpr_and_cmd_are_mib_areas():
    fractions = [0.0, 0.5, 1.0]
    assert cpr_cmd(fractions, [0.0, 1.0, 1.0]) == {"cpr": 0.75, "cmd": 0.25}
    assert cpr_cmd(fractions, [1.0, 1.0, 1.0]) == {"cpr": 1.0, "cmd": 0.0}
    assert cpr_cmd(fractions, [1.0, 1.5, 1.0])["cmd"] == 0.25  # overshooting the model counts against minimality


@pytest.fixture(scope="module")
def ioi_circuits(small_organism):
    ioi = small_organism("ioi")
    batch = ioi.task.patching_batch(ioi.model.tokenizer, 64)
    return ioi, batch, {method: find_circuit(ioi.model, batch, EdgeCircuitConfig(method=method, edges=50))
                        for method in ("eap", "eap-ig")}


def test_eap_and_eap_ig_find_faithful_ioi_circuits(ioi_circuits):
    _, _, found = ioi_circuits
    for method, result in found.items():
        # measured (64 test prompts): 50 of 110 edges keep 0.977 (EAP) and 0.980 (EAP-IG) of the logit difference;
        # CPR 0.75 and 0.78 over MIB's budgets
        assert result.info["faithfulness"] > 0.95, method
        assert result.curve["cpr"] > 0.7 and result.curve["cmd"] < 0.3
        assert result.curve["model_metric"] > 5 > 0 > result.curve["empty_metric"]
        assert result.curve["points"][-2]["faithfulness"] == pytest.approx(1.0)  # every edge: the model itself
        assert "a1.h1->logits" in result.circuit  # the organism's name mover writes the answer


def test_an_edge_circuit_round_trips_through_its_files(ioi_circuits, tmp_path):
    ioi, _, found = ioi_circuits
    files = found["eap"].save(tmp_path, model=ioi.model, config=EdgeCircuitConfig(method="eap"))
    loaded = EdgeCircuit.load(tmp_path)
    assert loaded.scores == found["eap"].scores and loaded.circuit == found["eap"].circuit
    assert loaded.curve == found["eap"].curve and loaded.graph == found["eap"].graph
    assert set(files) == {"scores", "circuit", "curve", "graph", "mib", "manifest"}
    mib = read_mib_circuit(files["mib"])  # the file MIB reads: same scores, same circuit
    assert mib.edges == frozenset(found["eap"].circuit)
    assert all(mib.scores[e] == pytest.approx(v) for e, v in found["eap"].scores.items())
    page = (tmp_path / "graph.html").read_text()
    assert page.count('class="c"') >= len(found["eap"].circuit)  # every circuit edge drawn, highlighted
    other = EdgeCircuit.from_scores(loaded.scores, loaded.circuit)
    assert other.graph == loaded.graph and other.nodes() == loaded.nodes()
    with pytest.raises(MechscopeError, match="holds no edge circuit"):
        EdgeCircuit.load(tmp_path / "missing")


def test_circuit_verb_saves_a_circuit_and_eval_measures_it_again(small_organism, tmp_path, capsys):
    from tests.circuits.test_cli import run

    path, out = str(small_organism("ioi").path), str(tmp_path / "circuit")
    found = run(["circuit", path, "--task", "ioi", "--prompts", "200", "--method", "eap", "--edges", "50",
                 "--out", out], capsys)
    assert found["circuit_edges"] <= 50 and found["cpr"] > 0.6
    assert found["info"]["forward_passes"] == 2 * found["info"]["passes"]
    again = run(["circuit", "eval", out], capsys)
    assert again["cpr"] == pytest.approx(found["cpr"], abs=1e-6)
    assert EdgeCircuit.load(out).curve["points"][-1]["edges"] == found["circuit_edges"]
    with pytest.raises(MechscopeError, match="method must be one of"):
        EdgeCircuitConfig(method="path-patching")


def test_a_gqa_circuit_saves_its_graph_page_with_kv_inputs_on_their_groups_first_head(tmp_path):
    graph = EdgeGraph(2, 4, 2, False)  # two query heads per KV head
    scores = {name: float(i % 7) - 3 for i, name in enumerate(graph.edge_names)}
    kv_edges = [e for e in graph.edge_names if ".kv1<k>" in e][:2]
    files = EdgeCircuit.from_scores(scores, set(kv_edges), {"method": "eap"}, parallel=False).save(tmp_path)
    assert "mib" not in files  # MIB's graph has per-head k/v inputs
    page = (tmp_path / "graph.html").read_text()
    assert html.escape(kv_edges[0].replace(".kv1<k>", ".h2<k>")) in page and ".kv1&lt;" not in page
