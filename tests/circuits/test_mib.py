"""MIB's graph names and circuit files: EAP-IG's edge counts, a write/read round trip, clear refusals."""

from __future__ import annotations

import json

import pytest

import mechscope

from mechscope.circuits.mib import (candidate_edges, circuit_nodes, graph_config, node_parts, read_mib_circuit,
                                    write_mib_circuit)
from mechscope.errors import MechscopeError
from mechscope.toy.handbuilt import HandBuiltConfig, handbuilt_circuit
from tests.conftest import tiny_hf


def test_candidate_edges_match_eap_igs_graph():
    assert len(candidate_edges(12, 12)) == 32491  # GPT-2 small in EAP-IG and MIB
    edges = candidate_edges(2, 4)
    # layer 0: input -> 4 heads x qkv; 5 sources -> m0; layer 1: 6 sources x 12; 10 -> m1; 11 -> logits
    assert len(edges) == 12 + 5 + 72 + 10 + 11 and len(set(edges)) == len(edges)
    assert "a0.h3->m0" in edges and "a0.h3->m0" not in candidate_edges(2, 4, parallel=True)
    assert edges[0] == "input->a0.h0<q>" and edges[-1] == "m1->logits"
    assert handbuilt_circuit(HandBuiltConfig(), positional=True) <= set(edges)


def test_node_names_parse_and_refuse():
    assert node_parts("a12.h3<v>") == ("attention", 12, 3, "v") and node_parts("m4") == ("mlp", 4, None, None)
    assert node_parts("logits") == ("logits", None, None, None)
    with pytest.raises(MechscopeError, match="not a MIB node name"):
        node_parts("L1H2")


def test_circuit_file_round_trips(tmp_path):
    cfg = {"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 292}
    circuit = handbuilt_circuit(HandBuiltConfig())
    scores = {edge: 0.01 * i for i, edge in enumerate(candidate_edges(2, 4))}
    path = write_mib_circuit(tmp_path / "circuit.json", scores, circuit, cfg)
    document = json.loads(path.read_text())
    assert set(document) == {"cfg", "nodes", "edges"} and document["nodes"]["a1.h2"] == {"in_graph": True}
    assert document["edges"]["a0.h1->a1.h2<k>"] == {"score": scores["a0.h1->a1.h2<k>"], "in_graph": True}
    back = read_mib_circuit(path)
    assert back.cfg == cfg and back.scores == scores and back.edges == circuit
    assert back.nodes == circuit_nodes(circuit) == {"input", "a0.h1", "a1.h2", "logits"}


def test_bad_files_and_edges_are_named(tmp_path):
    cfg = {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8}
    with pytest.raises(MechscopeError, match="not in the MIB graph"):
        write_mib_circuit(tmp_path / "c.json", {"a1.h0->logits": 1.0}, set(), cfg)
    (tmp_path / "bad.json").write_text(json.dumps({"cfg": cfg, "edges": {}}))
    with pytest.raises(MechscopeError, match="not a MIB circuit file"):
        read_mib_circuit(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["gpt2", "gpt_neox", "llama"])
def test_config_of_a_model(name):
    cfg = graph_config(mechscope.load_model(tiny_hf(name), device="cpu", check=False))
    assert cfg["parallel_attn_mlp"] == (name == "gpt_neox") and cfg["n_layers"] == 3 and cfg["n_heads"] == 4
