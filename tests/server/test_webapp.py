"""The web app's files and the endpoints it reads: packaged assets only, the server's resources, saved circuits."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import urllib.request

import pytest
import torch

from mechscope.circuits import CircuitResult
from mechscope.circuits.edge_results import EdgeCircuit
from mechscope.circuits.graph import EdgeGraph
from mechscope.errors import MechscopeError
from mechscope.server import ServerConfig, load_circuits, make_server
from tests.server.conftest import call


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_the_page_and_every_file_it_loads_are_served_from_the_package(served):
    url, _ = served
    with urllib.request.urlopen(url + "/", timeout=30) as response:
        status, kind, page = response.status, response.headers["Content-Type"], response.read()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]  # no inline or foreign scripts
    assert status == 200 and kind == "text/html; charset=utf-8"
    loaded = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.decode())
    assert sorted(loaded) == ["/assets/app.css", "/assets/app.js", "/assets/dashboard.css", "/assets/dashboard.js"]
    for path in loaded:
        status, kind, body = _get(url + path)
        assert status == 200 and kind.startswith("text/css" if path.endswith(".css") else "text/javascript")
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # nothing from the network
    assert b"renderLatent" in _get(url + "/assets/dashboard.js")[2]  # the static dashboards' renderer, shared
    for path in ("/assets/app.py", "/assets/..%2Fapp.py", "/assets/%2Fetc%2Fpasswd"):
        code, body = call(url, path)
        assert code == 404 and body["error"]["param"] == "name"


def test_resources_describe_what_requests_may_name(served):
    url, resources = served
    code, info = call(url, "/v1/resources")
    assert code == 200 and info["model"] == "tiny-chat" and info["models"] == ["tiny-chat", "pushed"]
    assert info["vectors"] == [{"name": "push", "layers": [1], "hook": "blocks.{layer}.hook_resid_pre"}]
    assert info["dictionaries"] == [{"name": "sae", "hook": "blocks.1.hook_resid_post", "latents": 24}]
    assert info["catalog"]["latents"] == 24 and info["catalog"]["hook"] == "blocks.1.hook_resid_post"
    assert "clamp" in info["ops"] and info["scopes"] == ["prompt", "generated", "all"]
    assert info["graphs"] == [] and info["circuits"] == []


@pytest.fixture
def saved_circuits(tmp_path):
    """Two results saved as the circuits verbs save them: one at the top, one nested a folder deeper."""
    values = torch.arange(6.0).reshape(2, 3)
    patching = CircuitResult(values, ("layer", "head"), {"layer": ["0", "1"], "head": ["0", "1", "2"]},
                             "activation_patching", clean=5.0, corrupted=0.0)
    patching.save(tmp_path / "ioi")
    CircuitResult(-values, ("layer", "head"), patching.labels, "head_scores").save(tmp_path / "heads" / "induction")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "result.json").write_text("{}")  # no heatmap: not a saved result
    names = EdgeGraph(2, 2, 2, False).edge_names
    scores = {name: float(i % 5) - 2 for i, name in enumerate(names)}
    EdgeCircuit.from_scores(scores, set(names[:3]), {"method": "eap"}).save(tmp_path / "edges" / "eap")
    return tmp_path


def test_saved_circuits_are_listed_and_served(served, saved_circuits):
    _, resources = served
    circuits = load_circuits(saved_circuits)
    assert sorted(circuits) == ["edges-eap", "heads-induction", "ioi"]
    server = make_server(dataclasses.replace(resources, circuits=circuits), ServerConfig(port=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        listed = {c["id"]: c for c in call(url, "/v1/circuits")[1]["data"]}
        assert listed["ioi"]["viewer"] == "/circuits/ioi" and listed["ioi"]["clean"] == 5.0
        assert listed["ioi"]["top"][0] == {"entry": "layer=1 head=2", "value": 5.0}
        assert listed["heads-induction"]["kind"] == "head_scores"
        edges = listed["edges-eap"]  # an edge circuit: the same summary shape, its graph page as the viewer
        assert edges["kind"] == "eap circuit (edges)" and edges["shape"] == [3] and abs(edges["top"][0]["value"]) == 2
        assert _get(url + "/circuits/edges-eap")[2] == (saved_circuits / "edges/eap/graph.html").read_bytes()
        code, result = call(url, "/v1/circuits/ioi")
        assert code == 200 and result == json.loads((saved_circuits / "ioi" / "result.json").read_text())
        status, kind, page = _get(url + "/circuits/heads-induction")
        assert kind.startswith("text/html") and page == (saved_circuits / "heads/induction/heatmap.html").read_bytes()
        code, body = call(url, "/v1/circuits/heads%2Finduction")
        assert code == 404 and "no circuit named" in body["error"]["message"]
        assert call(url, "/v1/resources")[1]["circuits"] == ["edges-eap", "heads-induction", "ioi"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_directory_without_saved_circuits_is_refused(tmp_path):
    with pytest.raises(MechscopeError, match="holds no saved circuit results"):
        load_circuits(tmp_path)
