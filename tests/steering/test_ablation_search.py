"""The Heretic-style ablation search: the layer kernel and the direction interpolation give known values, a
weight-1 kernel is the hooked directional ablation of the attention and MLP outputs, and the search's choice
obeys its rule on the refusal organism (one forward pass per prompt set per trial)."""

from __future__ import annotations

import random
import sys

import pytest
import torch

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import (AblationParams, AblationSearchConfig, Direction, Intervention, SteeringVector,
                                ablation_edits, interpolated_direction, search_ablation, steer)
from mechscope.steering.directions import DirectionConfig, directions
from tests.conftest import tiny_hf

FLAT = {"max_weight": 1.0, "peak": 0.0, "min_weight": 1.0, "width": 10.0}  # weight 1 at every layer


def test_the_kernel_peaks_falls_linearly_and_stops_past_its_width():
    params = AblationParams(0.0, {"attn": {"max_weight": 1.2, "peak": 2.0, "min_weight": 0.2, "width": 2.0},
                                  "mlp": {"max_weight": 1.0, "peak": 0.5, "min_weight": 0.0, "width": 1.0}})
    weights = params.weights(6)
    assert weights["attn"] == pytest.approx([0.2, 0.7, 1.2, 0.7, 0.2, 0.0])
    assert weights["mlp"] == pytest.approx([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])


def test_the_direction_interpolates_unit_directions_between_layers():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 0.5])
    vector = SteeringVector({4: a, 7: b}, hook="blocks.{layer}.hook_resid_pre")
    assert torch.allclose(interpolated_direction(vector, 0.0), torch.tensor([1.0, 0.0]))
    assert torch.allclose(interpolated_direction(vector, 1.0), torch.tensor([0.0, 1.0]))
    assert torch.allclose(interpolated_direction(vector, 0.5), torch.tensor([1.0, 1.0]) / 2 ** 0.5)


def test_a_weight_one_kernel_is_directional_ablation_of_the_block_outputs():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    direction = torch.randn(32, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    hooks = [f"blocks.{layer}.{hook}" for layer in range(model.n_layers) for hook in ("hook_attn_out", "hook_mlp_out")]
    with steer(model, [Intervention(hook, Direction(direction), "ablate") for hook in hooks]), torch.no_grad():
        expected = model(ids)
    edits = ablation_edits(direction, AblationParams(0.0, {"attn": FLAT, "mlp": FLAT}), model.n_layers)
    assert len(edits) == 2 * model.n_layers and {e.op for e in edits} == {"scale"}
    with steer(model, edits), torch.no_grad():
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def organism_search(small_organism):
    organism = small_organism("refusal")
    harmful, harmless = (organism.task.instructions(h, "train") for h in (True, False))
    random.Random(0).shuffle(harmful)
    random.Random(1).shuffle(harmless)
    vector = directions(organism.model, harmful[:64], harmless[:64], DirectionConfig())
    config = AblationSearchConfig(trials=8, startup_trials=4, layer_range=(0.0, 1.0), kl_bound=0.5)
    return search_ablation(organism.model, vector, harmful[64:96], harmless[64:96], config), vector, organism


def test_the_chosen_trial_is_the_fewest_refusals_on_the_front_within_the_kl_bound(organism_search):
    result, vector, organism = organism_search
    assert len(result.trials) == 8 and result.baseline["refusals"] == 1.0
    trials = result.trials
    for n in result.pareto:  # nothing on the front is dominated
        assert not any(t["refusals"] <= trials[n]["refusals"] and t["kl"] <= trials[n]["kl"] and
                       (t["refusals"], t["kl"]) != (trials[n]["refusals"], trials[n]["kl"]) for t in trials)
    within = [n for n in result.pareto if trials[n]["kl"] <= 0.5]
    if within:
        assert result.chosen in within and trials[result.chosen]["refusals"] == min(trials[n]["refusals"]
                                                                                  for n in within)
    assert len(result.edits(vector, organism.model.n_layers)) > 0


def test_the_result_round_trips_and_a_missing_optuna_is_named(organism_search, tmp_path, monkeypatch):
    import json

    result, vector, organism = organism_search
    saved = json.loads(result.save(tmp_path / "search.json").read_text())
    assert saved["chosen"] == result.chosen and len(saved["trials"]) == 8
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SteeringError, match="needs Optuna"):
        search_ablation(organism.model, vector, ["a"], ["b"])


def test_cli_searches_and_writes_the_directions_and_the_trials(small_organism, tmp_path, capsys):
    import json

    from mechscope.cli import main

    model_dir = str(small_organism("refusal").path)
    assert main(["steer", "search", model_dir, "--out", str(tmp_path / "s"), "--device", "cpu", "--requests",
                 "refusal", "--n-train", "16", "--n-val", "8", "--trials", "3", "--startup-trials", "3",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["baseline"]["n_harmful"] == 8 and result["pareto"]
    assert len(json.loads((tmp_path / "s" / "search.json").read_text())["trials"]) == 3
    assert SteeringVector.load(tmp_path / "s" / "directions").layers == [0, 1]
