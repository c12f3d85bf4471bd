"""Harvest into a cache: exact values, resume after interruption, corruption, mismatch, shards, specials."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mechscope.data.harvester as harvest_module
from mechscope.data import ActivationCache, harvest
from mechscope.errors import CacheMismatchError, CorruptShardError, DataError, MechscopeError

HOOKS = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z"]
OPTS = dict(context=32, batch_size=8, shard_mb=1, shuffle_buffer=64)


@pytest.fixture(scope="module")
def small_cache(minilm, tmp_path_factory):
    return harvest(minilm, "pydocs", HOOKS, tokens=3000, out=tmp_path_factory.mktemp("cache"), **OPTS)


def test_cached_values_equal_a_fresh_run_on_the_same_batch(minilm, small_cache):
    cache = ActivationCache(small_cache)
    assert len(cache) == 3000 and cache.complete and len(cache._shards) > 1
    reader = cache._shards[0].reader
    windows = torch.from_numpy(np.array(reader.array("windows"))).long()
    index = torch.from_numpy(np.array(reader.array("index"))).long()
    _, fresh = minilm.run_with_cache(windows[:8], names=HOOKS)
    first_batch = index[:, 0] < 8
    n = int(first_batch.sum())
    for hook in HOOKS:
        expected = fresh[hook].flatten(2)[index[:n, 0], index[:n, 1]]
        assert torch.equal(cache.get(hook, np.arange(n)), expected)
    assert torch.equal(cache.token_ids(np.arange(n)), windows[index[:n, 0], index[:n, 1]])
    assert cache.d("blocks.0.attn.hook_z") == 384


def test_special_tokens_are_excluded_but_their_positions_recorded(minilm, small_cache):
    cache = ActivationCache(small_cache)
    specials = set(minilm.tokenizer.all_special_ids)
    assert not specials & set(cache.token_ids(slice(None)).tolist())
    window, pos = cache.context(0)
    assert window[0] == minilm.tokenizer.cls_token_id and pos == 1  # position 0 (CLS) is in the window only


def test_manifest_records_provenance_and_stats(minilm, small_cache):
    manifest = json.loads((small_cache / "manifest.json").read_text())
    assert manifest["model"]["fingerprint"] == minilm.fingerprint()
    assert manifest["hooks"]["blocks.1.hook_resid_post"]["d"] == 384
    assert manifest["corpus"].startswith("pydocs") and manifest["context"] == 32
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    cache = ActivationCache(small_cache)
    acts = cache.get("blocks.1.hook_resid_post", slice(None)).double()
    stats = cache.stats("blocks.1.hook_resid_post")
    torch.testing.assert_close(stats["mean"], acts.mean(0).float())
    assert stats["mean_norm"] == pytest.approx(acts.norm(dim=-1).mean().item())


def test_interrupted_harvest_resumes_to_identical_cache(minilm, small_cache, tmp_path, monkeypatch):
    real = harvest_module.activation_batches

    def dies_after_five(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 5:
                raise KeyboardInterrupt
            yield batch
    monkeypatch.setattr(harvest_module, "activation_batches", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        harvest(minilm, "pydocs", HOOKS, tokens=3000, out=tmp_path, **OPTS)
    partial = json.loads((tmp_path / "manifest.json").read_text())
    assert 0 < len(partial["shards"]) and not partial["complete"]
    monkeypatch.setattr(harvest_module, "activation_batches", real)
    harvest(minilm, "pydocs", HOOKS, tokens=3000, out=tmp_path, **OPTS)
    resumed, reference = ActivationCache(tmp_path), ActivationCache(small_cache)
    for hook in HOOKS:
        assert torch.equal(resumed.get(hook, slice(None)), reference.get(hook, slice(None)))


def test_corrupt_and_missing_shards_are_named(minilm, small_cache, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_cache, copy)
    shard = copy / "shard_00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="shard_00001"):
        ActivationCache(copy).verify()
    shard.write_bytes(bytes(data[:1000]))
    with pytest.raises(CorruptShardError, match="shard_00001.*truncated"):
        ActivationCache(copy)
    shard.unlink()
    with pytest.raises(CorruptShardError, match="shard_00001.*missing"):
        ActivationCache(copy)
    with pytest.raises(CorruptShardError, match="shard_00001"):  # a resume names it before doing work
        harvest(minilm, "pydocs", HOOKS, tokens=4000, out=copy, **OPTS)


def test_mismatched_request_keeps_the_existing_cache(minilm, small_cache):
    before = (small_cache / "manifest.json").read_text()
    with pytest.raises(CacheMismatchError, match="hooks"):
        harvest(minilm, "pydocs", ["blocks.2.hook_resid_post"], tokens=3000, out=small_cache, **OPTS)
    assert (small_cache / "manifest.json").read_text() == before


def test_sharded_harvest_opens_as_one_cache(minilm, small_cache, tmp_path):
    for i in range(2):
        harvest(minilm, "pydocs", HOOKS[:1], tokens=1001, out=tmp_path, shard=(i, 2), **OPTS)
    cache = ActivationCache(tmp_path)
    assert len(cache) == 1001 and len(cache.directories) == 2
    windows = [np.array(ActivationCache(d)._shards[0].reader.array("windows")) for d in cache.directories]
    assert not {tuple(r) for r in windows[0]} & {tuple(r) for r in windows[1]}  # disjoint slices of the stream


def test_bfloat16_cache_holds_the_rounded_activations_and_trains_like_float32(minilm, small_cache, tmp_path):
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.evaluation.reconstruction import fraction_of_variance_unexplained

    half = harvest(minilm, "pydocs", HOOKS[:1], tokens=3000, out=tmp_path / "bf16", dtype="bfloat16", **OPTS)
    full, rounded = ActivationCache(small_cache), ActivationCache(half)
    assert rounded.info()["dtype"] == "bfloat16" and rounded.info()["bytes"] < 0.55 * full.info()["bytes"] / 2
    stored = rounded.get(HOOKS[0], slice(None))
    assert stored.dtype == torch.bfloat16 and torch.equal(stored, full.get(HOOKS[0], slice(None)).bfloat16())
    tcfg = TrainConfig(tokens=6000, batch_size=200, init_tokens=2000, device="cpu", log_every=10)
    x = full.get(HOOKS[0], slice(None))
    fvus = []
    for cache in (small_cache, half):
        trained = train(cache, DictionaryConfig(384, 768, "topk", k=16), tmp_path / cache.name, tcfg, hook=HOOKS[0])
        fvus.append(fraction_of_variance_unexplained(x, load_dictionary(trained[0])(x)))
    assert fvus[1] < 0.9 and abs(fvus[0] - fvus[1]) < 0.03  # 30 steps: learning, and as from float32


def test_bad_requests_are_refused(minilm, tmp_path):
    with pytest.raises(MechscopeError, match="attention pattern"):
        harvest(minilm, "pydocs", ["blocks.0.attn.hook_pattern"], tokens=10, out=tmp_path)
    with pytest.raises(MechscopeError, match="blocks.0.hook_resid_post"):
        harvest(minilm, "pydocs", ["blocks.0.hook_resid_pst"], tokens=10, out=tmp_path)
    with pytest.raises(DataError, match="ran out"):
        harvest(minilm, ["a short text " * 40], ["blocks.0.hook_resid_post"], tokens=10_000, out=tmp_path / "x",
                context=32)
    assert ActivationCache(tmp_path / "x").complete is False  # what was harvested is kept


def test_cli_harvest_from_jsonl_column(tmp_path, capsys):
    from mechscope.cli import main

    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"body": f"document {i} about sparse dictionaries and features"}) + "\n"
                              for i in range(200)))
    assert main(["harvest", "minilm", "--source", str(source), "--column", "body", "--hook",
                 "blocks.0.hook_resid_post", "--tokens", "5e2", "--context", "16", "--out", str(tmp_path / "c"),
                 "--device", "cpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["tokens"] == 500 and info["corpus"].endswith("[body]")
