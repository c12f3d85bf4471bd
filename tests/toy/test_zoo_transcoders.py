"""Organism transcoders: cached in the zoo, deterministic (a fresh run trains the same weights), a cache hit trains
nothing, and the default ones (the graph tests') explain most of each MLP output."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.cli import main
from mechscope.dictionaries import CrossLayerTranscoder, load_transcoders
from mechscope.toy import (OrganismTranscoderConfig, load_organism, organism_transcoders, organism_transcoders_path,
                           train_organism_transcoders)
from mechscope.toy import zoo_transcoders as module


def _tensors(found) -> dict[str, torch.Tensor]:
    if isinstance(found, CrossLayerTranscoder):
        return dict(found.state_dict())
    return {f"{layer}.{k}": v for layer, d in zip(found.layers, found.dictionaries) for k, v in d.state_dict().items()}


QUICK = dict(documents=24, tokens=8192, d_latent=64, batch_size=512)  # a few seconds: the determinism check


@pytest.mark.parametrize("cross_layer", [False, True])
def test_default_transcoders_explain_most_of_each_mlp_output(cross_layer):
    config = OrganismTranscoderConfig(cross_layer=cross_layer)
    manifest = json.loads((organism_transcoders_path("induction", "small", config) / "manifest.json").read_text())
    assert max(manifest["fvu_per_layer"]) < 0.2 and manifest["transcoders"] == config.kind


@pytest.mark.parametrize("cross_layer", [False, True])
def test_a_cache_hit_returns_the_weights_a_fresh_run_trains(tmp_path, monkeypatch, cross_layer):
    config = OrganismTranscoderConfig(cross_layer=cross_layer, **QUICK)
    organism_transcoders_path("induction", "small", config, progress=False)  # trained here on first use

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")
    monkeypatch.setattr(module, "train_organism_transcoders", no_training)
    cached = organism_transcoders("induction", "small", config)
    fresh = load_transcoders(train_organism_transcoders(load_organism("induction", "small", device="cpu"), config,
                                                        tmp_path / "fresh"))
    assert isinstance(cached, CrossLayerTranscoder) == cross_layer
    expected, got = _tensors(fresh), _tensors(cached)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_zoo_transcoders_verb_names_the_cache_entry(capsys):
    main(["zoo", "transcoders", "induction", "--size", "small", "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["path"] == str(organism_transcoders_path("induction", "small", progress=False))
    assert result["kind"] == "per-layer" and len(result["fvu_per_layer"]) == 2
