"""The circuit graph page: one offline file that draws every circuit edge with its score."""

from __future__ import annotations

import re

import pytest

from mechscope.circuits.graph_view import write_graph_view
from mechscope.circuits.mib import candidate_edges
from mechscope.errors import MechscopeError
from mechscope.toy.handbuilt import HandBuiltConfig, handbuilt_circuit


def test_page_is_offline_and_draws_the_circuit(tmp_path):
    circuit = handbuilt_circuit(HandBuiltConfig(), positional=True)
    scores = {edge: (1.0 if edge in circuit else 0.001) * (-1) ** i for i, edge in enumerate(candidate_edges(2, 4))}
    path = write_graph_view(scores, tmp_path / "view" / "circuit.html", circuit, max_edges=20)
    assert [p.name for p in path.parent.iterdir()] == ["circuit.html"]
    page = path.read_text()
    assert "://" not in page and "<script src" not in page and "<link" not in page
    drawn = re.findall(r'<path class="(c?)" data-rank="\d+"[^>]*><title>([^:]+): ', page)
    assert len(drawn) == 20
    assert {edge.replace("&lt;", "<").replace("&gt;", ">") for c, edge in drawn if c} == circuit
    assert 'stroke="#b2182b"' in page and 'stroke="#2166ac"' in page  # both signs coloured
    for node in ("input", "a1.h3", "m1", "logits"):
        assert f">{node}</text>" in page


def test_circuit_edges_are_drawn_even_without_scores(tmp_path):
    path = write_graph_view({"input->logits": 2.0}, tmp_path / "c.html", {"a0.h1->a1.h2<k>"}, max_edges=1)
    assert "a0.h1-&gt;a1.h2&lt;k&gt;: 0" in path.read_text()
    with pytest.raises(MechscopeError, match="needs edge scores"):
        write_graph_view({}, tmp_path / "empty.html")
