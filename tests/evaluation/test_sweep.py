"""Sweep + Pareto: one pass trains the grid, each dictionary is evaluated, plots are written offline."""

from __future__ import annotations

import json

from mechscope.cli import main
from mechscope.data import harvest


def test_sweep_then_pareto_plots(minilm, tmp_path, capsys):
    cache = harvest(minilm, "pydocs", "blocks.2.hook_resid_post", tokens=3000, out=tmp_path / "cache", context=32,
                    batch_size=16)
    assert main(["sweep", str(cache), "--model", "minilm", "--out", str(tmp_path / "sweep"), "--archs",
                 "topk,jumprelu,relu", "--l0", "8,16", "--l1", "3", "--expansion", "2", "--tokens", "4096",
                 "--batch-size", "256", "--eval-tokens", "300", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = result["dictionaries"]
    assert set(rows) == {"topk_768_k8", "topk_768_k16", "jumprelu_768_l0-8", "jumprelu_768_l0-16", "relu_768_l1-3"}
    assert rows["topk_768_k8"]["l0"] == 8.0 and rows["topk_768_k16"]["l0"] == 16.0
    assert all("embedding_fidelity" in r for r in rows.values())
    assert len(json.loads((tmp_path / "sweep/sweep.json").read_text())) == 5

    assert main(["plot", "pareto", str(tmp_path / "sweep"), "--json"]) == 0
    paths = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    page = open(paths["html"]).read()
    assert page.count("<circle") == 2 * 5  # two panels (FVU, embedding fidelity), five dictionaries each
    assert "http" not in page and 'data-arch="jumprelu"' in page
