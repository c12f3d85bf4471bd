"""The ground-truth benchmark scores every variant against known directions; the CLI writes the table."""

from __future__ import annotations

import json

from mechscope.cli import main
from mechscope.dictionaries import DictionaryConfig
from mechscope.evaluation.ground_truth import ground_truth_benchmark, markdown_table
from mechscope.synthetic import SyntheticFeatures


def test_benchmark_rows_and_known_answers(tmp_path):
    data = SyntheticFeatures(n_features=128, d=64, active=4, seed=2)
    configs = [DictionaryConfig(64, 128, "topk", k=4), DictionaryConfig(64, 256, "topk", k=4)]
    rows = ground_truth_benchmark(tmp_path, data, configs, steps=600, batch_size=512)
    exact, wide = rows
    assert exact["mcc"] > 0.85 and exact["matched"] > 0.8 and exact["duplicate_fraction"] < 0.05
    assert wide["mmcs"] > 0.9 and abs(wide["l0"] - 4) < 0.5  # twice as many latents still find every feature
    assert "| topk_128_k4 |" in markdown_table(rows)


def test_cli_bench_ground_truth(tmp_path, capsys):
    assert main(["bench", "ground-truth", "--out", str(tmp_path), "--features", "64", "--d", "32", "--steps", "50",
                 "--batch-size", "256", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["variants"]) == 7 and len(result["absorption"]) == 2
    assert (tmp_path / "ground_truth.md").read_text().count("\n") == 9
