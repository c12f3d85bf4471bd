"""Graph endpoints serve what `mechscope graph` wrote: the list with summaries, Neuronpedia JSON, QK terms, viewer."""

from __future__ import annotations

import json
import threading
import urllib.request

import torch

from mechscope.circuits.graphs import GraphConfig, trace
from mechscope.server import Resources, ServerConfig, load_graphs, make_server
from tests.circuits.graphs.conftest import exact_transcoders, relu_gpt2  # noqa: F401 (fixtures)
from tests.server.conftest import call


def test_graph_endpoints_serve_the_traced_files(tmp_path, relu_gpt2, exact_transcoders):  # noqa: F811
    summary = trace(relu_gpt2, exact_transcoders, torch.tensor([3, 7, 11, 3, 7]), tmp_path / "graphs" / "repeat",
                    GraphConfig(zero_bos=False), slug="repeat")
    server = make_server(Resources(relu_gpt2, "relu-gpt2", graphs=load_graphs(tmp_path / "graphs")),
                         ServerConfig(port=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        listed = call(url, "/v1/graphs")[1]["data"]
        assert [g["id"] for g in listed] == ["repeat"] and listed[0]["kept_edges"] == summary["kept_edges"]
        status, graph = call(url, "/v1/graphs/repeat")
        written = json.loads((tmp_path / "graphs" / "repeat" / "repeat.json").read_text())
        assert status == 200 and graph == written and {"metadata", "nodes", "links"} <= set(graph)
        assert call(url, "/v1/graphs/repeat/qk")[0] == 200
        with urllib.request.urlopen(url + "/graphs/repeat") as response:
            assert response.headers["Content-Type"].startswith("text/html")
            assert b"<script" in response.read()
        code, body = call(url, "/v1/graphs/..%2F..%2Fetc")
        assert code == 404 and "no graph named" in body["error"]["message"]
    finally:
        server.shutdown()
        server.server_close()
