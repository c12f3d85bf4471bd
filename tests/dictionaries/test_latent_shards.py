"""Latent-sharded training over local gloo ranks reaches the single-process dictionary and log, for every variant
that shards (TopK, BatchTopK, Matryoshka, ReLU, JumpReLU, Gated)."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.latent_shards import DictionaryShard, ShardLayout, spawn
from mechscope.errors import MechscopeError
from mechscope.synthetic import SyntheticFeatures

SOURCE = SyntheticFeatures(128, 32, seed=2)
DICT = DictionaryConfig(32, 256, "topk", k=2)
# one pass trains them all; Matryoshka's prefix of 100 ends inside shard 0's 128 latents
DICTS = [DICT, DictionaryConfig(32, 256, "batchtopk", k=2),
         DictionaryConfig(32, 256, "matryoshka", k=2, matryoshka_widths=[16, 100, 256]),
         DictionaryConfig(32, 256, "relu", l1_coefficient=1.0), DictionaryConfig(32, 256, "jumprelu"),
         DictionaryConfig(32, 256, "gated", l1_coefficient=1.0)]
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
    assert a.state_dict().keys() == b.state_dict().keys()
    for name, tensor in a.state_dict().items():
        if exact:
            assert torch.equal(b.state_dict()[name], tensor), name
        else:
            torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def _log(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / "training_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    return train(SOURCE, DICTS, tmp_path_factory.mktemp("single"), TrainConfig(**CONFIG))


@pytest.fixture(scope="module")
def shardeds(tmp_path_factory):  # spawns 2 gloo ranks
    return train(SOURCE, DICTS, tmp_path_factory.mktemp("sharded"), TrainConfig(**CONFIG, latent_shards=2))


@pytest.fixture(scope="module")
def single(singles):
    return singles[0]


@pytest.fixture(scope="module")
def sharded(shardeds):
    return shardeds[0]


@pytest.mark.parametrize("index", range(len(DICTS)), ids=[c.architecture for c in DICTS])
def test_two_latent_shards_train_the_single_process_dictionary_and_log(singles, shardeds, index):
    _assert_same(load_dictionary(singles[index]), load_dictionary(shardeds[index]))
    reference, steps = _log(singles[index]), _log(shardeds[index])
    assert len(steps) == len(reference) == CONFIG["tokens"] // CONFIG["batch_size"]
    for mine, theirs in zip(steps, reference):
        for key in theirs.keys() - {"elapsed_s"}:  # dead_fraction over all latents, not shard 0's
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), (mine["step"], key)


def test_topk_reference_run_had_dead_latents_and_auxk(single):
    steps = _log(single)
    assert max(s["aux"] for s in steps) > 0 and 0 < steps[-1]["dead_fraction"] < 1


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


def test_latent_shards_need_a_dictionary_that_divides():
    with pytest.raises(MechscopeError, match="divide evenly"):
        DictionaryShard(DictionaryConfig(32, 64, "topk", k=4), ShardLayout(shards=3))
    with pytest.raises(MechscopeError, match="divisor of the 3 processes"):
        ShardLayout.create(2, 0, 3)


@pytest.mark.parametrize("cfg", [DictionaryConfig(32, 64, "relu", relu_form="classic"),
                                 DictionaryConfig(32, 64, "crosscoder", n_sources=2)],
                         ids=["relu-classic", "crosscoder"])
def test_latent_shards_refuse_what_they_cannot_split_before_any_rank_starts(cfg, tmp_path):
    with pytest.raises(MechscopeError, match="trains SAEs and per-layer transcoders of relu, topk, batchtopk, gated"):
        train(SOURCE, cfg, tmp_path, TrainConfig(**CONFIG, latent_shards=2))
    assert not any(tmp_path.iterdir())


def test_a_live_stream_cannot_be_split_over_spawned_ranks_and_says_what_can(tmp_path):
    stream = (batch for batch in SOURCE.sample(4 * 32, 0)[0].split(32))  # a generator: no other process can read it
    with pytest.raises(MechscopeError, match="this source cannot be sent .* activation cache"):
        train(stream, DICT, tmp_path, TrainConfig(**CONFIG, latent_shards=2))
