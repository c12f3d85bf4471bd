"""`mechscope train --transcoder` (a set over layers) and `--arch clt` on a tiny model's cache."""

from __future__ import annotations

import json

import pytest

from mechscope.cli import main
from mechscope.data import harvest
from mechscope.dictionaries import CrossLayerTranscoder, TranscoderSet
from tests.dictionaries.exact_transcoders import TEXT, relu_gpt2

HOOKS = ("blocks.{layer}.ln2.hook_normalized", "blocks.{layer}.hook_mlp_out")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    hooks = [h.format(layer=layer) for layer in range(3) for h in HOOKS]
    return harvest(relu_gpt2(), TEXT, hooks, tokens=768, out=tmp_path_factory.mktemp("cli") / "cache", context=16)


def test_train_transcoder_per_layer_writes_a_set(cache, tmp_path, capsys):
    assert main(["train", str(cache), "--out", str(tmp_path), "--transcoder", "--in-hook", HOOKS[0], "--out-hook",
                 HOOKS[1], "--layers", "0,1,2", "--tokens", "1024", "--batch-size", "256", "--device", "cpu",
                 "--json", "--arch", "jumprelu", "--width", "64", "--target-l0", "8"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tset = TranscoderSet.load(result["transcoders"]["set"])
    assert tset.layers == [0, 1, 2] and tset.output_hooks == [HOOKS[1].format(layer=i) for i in range(3)]
    assert all(d.d_sae == 64 and d.cfg.is_transcoder for d in tset.dictionaries)


def test_train_arch_clt(cache, tmp_path, capsys):
    assert main(["train", str(cache), "--out", str(tmp_path), "--in-hook", HOOKS[0], "--out-hook", HOOKS[1],
                 "--layers", "0,1,2", "--tokens", "1024", "--batch-size", "256", "--device", "cpu", "--json",
                 "--arch", "clt", "--width", "2x", "--activation", "topk", "--k", "16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    clt = CrossLayerTranscoder.load(result["clt"])
    assert (clt.cfg.n_layers, clt.cfg.d_latent, clt.cfg.activation, clt.cfg.k) == (3, 64, "topk", 16)


def test_transcoder_without_hooks_and_clt_without_layers_are_refused(cache, tmp_path, capsys):
    assert main(["train", str(cache), "--out", str(tmp_path), "--transcoder", "--arch", "topk"]) == 2
    assert "--in-hook" in capsys.readouterr().err
    assert main(["train", str(cache), "--out", str(tmp_path), "--in-hook", HOOKS[0], "--out-hook", HOOKS[1],
                 "--arch", "clt"]) == 2
    assert "consecutive layers" in capsys.readouterr().err


def test_estimate_memory_prints_the_library_numbers_for_sharded_transcoders_and_clts(cache, tmp_path, capsys):
    from mechscope.dictionaries import CLTConfig, DictionaryConfig, estimate_clt_memory, estimate_memory

    common = ["train", str(cache), "--out", str(tmp_path), "--in-hook", HOOKS[0], "--out-hook", HOOKS[1],
              "--batch-size", "256", "--latent-shards", "2", "--estimate-memory", "--json"]
    assert main([*common, "--transcoder", "--layers", "1", "--arch", "topk", "--width", "64", "--skip-connection"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["memory"]["layer_1"]["topk_64"]
    expected = estimate_memory(DictionaryConfig(32, 64, "topk", d_out=32, skip_connection=True), 256, 2)
    assert printed["per_rank"] == expected.per_rank and printed["skip_connection"]
    assert main([*common, "--layers", "0,1,2", "--arch", "clt", "--width", "64", "--activation", "topk"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["memory"]
    expected = estimate_clt_memory(CLTConfig(3, 32, 64, activation="topk"), 256, 2)
    assert printed["per_rank"] == expected.per_rank and printed["d_sae"] == 3 * 64
    assert not any(tmp_path.iterdir())  # nothing trained
