"""Latent-sharded TopK training over local gloo ranks reaches the single-process dictionary."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries import Dictionary
from mechscope.dictionaries.latent_shards import DictionaryShard, ShardLayout, spawn
from mechscope.errors import MechscopeError
from mechscope.synthetic import SyntheticFeatures

SOURCE = SyntheticFeatures(128, 32, seed=2)
DICT = DictionaryConfig(32, 256, "topk", k=2)
# dead after 2 batches: AuxK is active from the third step on
CONFIG = dict(tokens=24 * 32, batch_size=32, init_tokens=256, log_every=1, dead_after_tokens=64, device="cpu")


def _train(out, interrupt_at: int | None = None, **overrides) -> None:
    """One rank's training (spawned); with interrupt_at, the data stops there as if the job were killed."""
    source = SOURCE
    if interrupt_at is not None:
        source = SyntheticFeatures(128, 32, seed=2)
        real = source.batches

        def dies(batch_size, start=0, seed=0):
            for i, batch in enumerate(real(batch_size, start, seed)):
                if start == 0 and i == interrupt_at:
                    raise KeyboardInterrupt
                yield batch
        source.batches = dies
    try:
        train(source, DICT, out, TrainConfig(**{**CONFIG, **overrides}))
    except KeyboardInterrupt:
        pass


def _assert_same(a, b, exact: bool = False) -> None:
    for name, tensor in a.state_dict().items():
        if exact:
            assert torch.equal(b.state_dict()[name], tensor), name
        else:
            torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return train(SOURCE, DICT, out, TrainConfig(**CONFIG))[0]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    return train(SOURCE, DICT, out, TrainConfig(**CONFIG, latent_shards=2))[0]  # spawns 2 gloo ranks


def test_two_latent_shards_match_one_process_with_auxk_active(single, sharded):
    aux = [json.loads(line)["aux"] for line in (single / "training_log.jsonl").read_text().splitlines()]
    assert max(aux) > 0  # dead latents existed and AuxK trained them
    _assert_same(load_dictionary(single), load_dictionary(sharded))
    steps = [json.loads(line) for line in (sharded / "training_log.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (single / "training_log.jsonl").read_text().splitlines()]
    for mine, theirs in zip(steps, reference):
        assert mine["l0"] == pytest.approx(theirs["l0"]) and mine["aux"] == pytest.approx(theirs["aux"], rel=1e-4)


@pytest.mark.slow
def test_two_replicas_of_two_latent_shards_match_one_process(single, tmp_path):
    spawn(4, _train_grid, (tmp_path,))
    _assert_same(load_dictionary(single), load_dictionary(tmp_path / single.name))


def _train_grid(out) -> None:
    _train(out, latent_shards=2)


def test_sharded_checkpoint_resumes_identically(sharded, tmp_path):
    spawn(2, _train_interrupted, (tmp_path / "b",))
    checkpoint = tmp_path / "b" / sharded.name / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["shard-0-of-2", "shard-1-of-2"]
    assert json.loads((checkpoint / "shard-1-of-2" / "trainer_state.json").read_text())["step"] == 10
    with pytest.raises(MechscopeError, match="another latent_shards"):
        train(SOURCE, DICT, tmp_path / "b", TrainConfig(**CONFIG, checkpoint_every=10))
    resumed = train(SOURCE, DICT, tmp_path / "b", TrainConfig(**CONFIG, latent_shards=2, checkpoint_every=10))[0]
    _assert_same(load_dictionary(sharded), load_dictionary(resumed), exact=True)
    assert not checkpoint.exists()


def _train_interrupted(out) -> None:
    _train(out, interrupt_at=15, latent_shards=2, checkpoint_every=10)


def test_each_shard_starts_from_its_rows_of_the_single_process_initialisation():
    full = Dictionary(DictionaryConfig(32, 64, "topk", k=4))
    full.reset_parameters(seed=3)
    for shard in range(2):
        part = DictionaryShard(full.cfg, ShardLayout(shards=2, shard=shard))
        part.reset_parameters(seed=3)
        rows = slice(32 * shard, 32 * (shard + 1))
        assert torch.equal(part.W_dec, full.W_dec[rows]) and torch.equal(part.W_enc, full.W_enc[:, rows])


def test_latent_shards_need_a_topk_dictionary_that_divides():
    with pytest.raises(MechscopeError, match="divide evenly"):
        DictionaryShard(DictionaryConfig(32, 64, "topk", k=4), ShardLayout(shards=3))
    with pytest.raises(MechscopeError, match="TopK SAEs"):
        DictionaryShard(DictionaryConfig(32, 64, "jumprelu"), ShardLayout(shards=2))
    with pytest.raises(MechscopeError, match="divisor of the 3 processes"):
        ShardLayout.create(2, 0, 3)
