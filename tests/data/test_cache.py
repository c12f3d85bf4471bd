"""ActivationCache batches: global shuffle, determinism, exact resume, full epochs; the permutation."""

from __future__ import annotations

import pytest
import torch

from mechscope.data import ActivationCache, harvest
from mechscope.data.permutation import permute
from mechscope.cli import main


@pytest.fixture(scope="module")
def cache(minilm, tmp_path_factory):
    out = harvest(minilm, "pydocs", ["blocks.0.hook_resid_post"], tokens=2000,
                  out=tmp_path_factory.mktemp("c"), context=32, batch_size=8, shard_mb=1)
    return ActivationCache(out)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000, 12345])
def test_permutation_is_a_bijection(n):
    assert torch.equal(permute(torch.arange(n), n, seed=3).sort().values, torch.arange(n))


def test_batches_are_deterministic_seeded_and_resumable(cache):
    a = list(cache.batches(100, "blocks.0.hook_resid_post", seed=0))
    b = list(cache.batches(100, "blocks.0.hook_resid_post", seed=0))
    c = list(cache.batches(100, "blocks.0.hook_resid_post", seed=1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    resumed = list(cache.batches(100, "blocks.0.hook_resid_post", seed=0, start=7))
    assert len(resumed) == len(a) - 7 and all(torch.equal(x, y) for x, y in zip(resumed, a[7:]))


def test_an_epoch_visits_every_token_once_across_shards(cache):
    everything = cache.get("blocks.0.hook_resid_post", slice(None))
    epoch = torch.cat(list(cache.batches(len(cache) // 4, "blocks.0.hook_resid_post", seed=5)))
    assert epoch.shape == everything.shape
    key = lambda t: t[:, 0] * 1e3 + t[:, 1]  # noqa: E731 - rows are distinct, two coordinates order them
    assert torch.equal(key(epoch).sort().values, key(everything).sort().values)
    assert not torch.equal(epoch, everything)  # and it is shuffled
    second = next(cache.batches(len(cache) // 4, "blocks.0.hook_resid_post", seed=5, start=4, epochs=2))
    assert not torch.equal(second, epoch[: len(cache) // 4])  # each epoch has its own order


def test_cli_cache_info_json(cache, capsys):
    import json

    assert main(["cache", "info", str(cache.directories[0]), "--verify", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["tokens"] == 2000 and info["verified"] and info["hooks"] == {"blocks.0.hook_resid_post": 384}
