"""The circuit verbs end to end on a trained organism directory: files written, figures that mean something."""

from __future__ import annotations

import json

import pytest

from mechscope.circuits import CircuitResult
from mechscope.cli import main
from mechscope.errors import MechscopeError
from mechscope.circuits.config import PatchConfig


def run(argv, capsys) -> dict:
    assert main([*argv, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_patch_heads_and_dla_on_the_ioi_organism(small_organism, tmp_path, capsys):
    path = str(small_organism("ioi").path)
    out = run(["patch", path, "--task", "ioi", "--prompts", "200", "--component", "attn", "--out",
               str(tmp_path / "attn")], capsys)
    result = CircuitResult.load(tmp_path / "attn")
    assert out["clean"] > 2 > out["corrupted"] and result.axes == ("layer",)
    assert result.normalized()[-1] > 0.3  # the last layer's attention moves the name to the end
    for name in ("heatmap.png", "heatmap.html", "values.safetensors"):
        assert (tmp_path / "attn" / name).stat().st_size > 0
    dla = run(["dla", path, "--prompts", "64", "--out", str(tmp_path / "dla")], capsys)
    assert dla["info"]["max_sum_error"] < 1e-4 and dla["info"]["total"] > 2
    heads = run(["heads", str(small_organism("induction").path)], capsys)
    assert heads["induction"]["top"][0][0].startswith("layer=1")


def test_logit_lens_verb_reads_every_layer(small_organism, capsys):
    ioi = small_organism("ioi")
    lens = run(["logit-lens", str(ioi.path), "When Mary and John went to the store , John gave a drink to",
                "--answer", "Mary"], capsys)
    per_layer = lens["log_prob_per_layer"]
    assert len(per_layer) == ioi.model.n_layers and per_layer[-1] > -0.5 and per_layer[0] < per_layer[-1]


def test_bad_settings_are_named():
    with pytest.raises(MechscopeError, match="component must be one of"):
        PatchConfig(component="neurons")
    with pytest.raises(MechscopeError, match="method must be one of"):
        PatchConfig(method="exact")
