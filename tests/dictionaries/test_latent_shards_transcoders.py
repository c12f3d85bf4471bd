"""Latent-sharded transcoders (plain and with a skip connection, through the CLI) and cross-layer transcoders trained
over 2 local gloo ranks reach the single-process weights and training log on a tiny GPT-2's MLP pairs."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data import harvest
from safetensors.torch import load_file

from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries import CLTConfig, CrossLayerTranscoder, Dictionary, DictionaryConfig, TrainConfig, train, \
    train_clt
from mechscope.dictionaries.clt_shards import check_clt_shardable
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.latent_shards import DictionaryShard, ShardLayout, spawn
from mechscope.dictionaries.variants import StepContext
from mechscope.errors import MechscopeError
from tests.dictionaries.exact_transcoders import TEXT, relu_gpt2
from tests.dictionaries.test_latent_shards import CONFIG, _assert_same, _log

TRAIN = {**CONFIG, "lr_warmup_steps": 1}  # full learning rate from the start: the weights move further
HOOKS = [f"blocks.{layer}.{h}" for layer in range(3) for h in ("ln2.hook_normalized", "hook_mlp_out")]
IN, OUT = HOOKS[2], HOOKS[3]
# plain and skip transcoders of every selection the trainer shards: per row, per batch with prefixes, dense
ARCHS = [["--arch", "topk", "--width", "128", "--k", "4"],
         ["--arch", "topk", "--width", "128", "--k", "4", "--skip-connection"],
         ["--arch", "matryoshka", "--width", "128", "--k", "4", "--matryoshka-widths", "16,100,128",
          "--skip-connection"],
         ["--arch", "jumprelu", "--width", "128", "--skip-connection"],
         ["--arch", "relu", "--width", "128", "--l1-coefficient", "1", "--skip-connection"]]
CONFIGS = [DictionaryConfig(32, 128, "topk", k=4), DictionaryConfig(32, 128, "topk", k=4, skip_connection=True),
           DictionaryConfig(32, 128, "matryoshka", k=4, matryoshka_widths=[16, 100, 128], skip_connection=True),
           DictionaryConfig(32, 128, "jumprelu", skip_connection=True),
           DictionaryConfig(32, 128, "relu", l1_coefficient=1.0, skip_connection=True)]
# a TopK CLT picks k over all 3 layers' latents (merged over shards) and calibrates thresholds from the batch
CLTS = [CLTConfig(3, 32, 64, activation="jumprelu", sparsity_coefficient=0.01),
        CLTConfig(3, 32, 64, activation="topk", k=6, skip_connection=True)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return harvest(relu_gpt2(), TEXT, HOOKS, tokens=768, out=tmp_path_factory.mktemp("tc") / "cache", context=16)


@pytest.fixture(scope="module")
def singles(cache, tmp_path_factory):
    return train(cache, CONFIGS, tmp_path_factory.mktemp("single"), TrainConfig(**TRAIN), hook=IN, hook_out=OUT)


@pytest.fixture(scope="module")
def shardeds(cache, tmp_path_factory):  # the CLI spawns 2 gloo ranks
    from mechscope.cli import main

    out = tmp_path_factory.mktemp("sharded")
    assert main(["train", str(cache), "--out", str(out), "--transcoder", "--in-hook", IN,
                 "--out-hook", OUT, "--latent-shards", "2", *_flags(TRAIN), *sum(ARCHS, [])]) == 0
    return out


def _flags(options: dict) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]


@pytest.fixture(scope="module")
def clt_runs(cache, tmp_path_factory):
    """The JumpReLU CLT sharded from the library, the TopK one from the CLI (each spawns 2 gloo ranks)."""
    from mechscope.cli import main

    single, sharded = tmp_path_factory.mktemp("clt-single"), tmp_path_factory.mktemp("clt-sharded")
    for cfg in CLTS:
        train_clt(cache, cfg, single, TrainConfig(**TRAIN))
    train_clt(cache, CLTS[0], sharded, TrainConfig(**TRAIN, latent_shards=2))
    assert main(["train", str(cache), "--out", str(sharded), "--arch", "clt", "--layers", "0,1,2", "--in-hook",
                 "blocks.{layer}.ln2.hook_normalized", "--out-hook", "blocks.{layer}.hook_mlp_out", "--width", "64",
                 "--activation", "topk", "--k", "6", "--skip-connection", "--latent-shards", "2", *_flags(TRAIN)]) == 0
    return single, sharded


def _assert_same_log(single, sharded) -> None:
    reference, steps = _log(single), _log(sharded)
    assert len(steps) == len(reference) == TRAIN["tokens"] // TRAIN["batch_size"]
    for mine, theirs in zip(steps, reference):
        for key in theirs.keys() - {"elapsed_s"}:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), (mine["step"], key)


@pytest.mark.parametrize("index", range(len(CONFIGS)),
                         ids=[f"{c.architecture}{'-skip' * c.skip_connection}" for c in CONFIGS])
def test_two_latent_shards_train_the_single_process_transcoder_and_log(singles, shardeds, index):
    single, sharded = load_dictionary(singles[index]), load_dictionary(shardeds / singles[index].name)
    assert sharded.cfg.is_transcoder and (sharded.cfg.hook_name, sharded.cfg.hook_name_out) == (IN, OUT)
    assert (sharded.W_skip is not None) == CONFIGS[index].skip_connection
    if sharded.W_skip is not None:  # trained from zero (its gradient is checked exactly below)
        assert bool(sharded.W_skip.any())
    _assert_same(single, sharded)
    _assert_same_log(singles[index], shardeds / singles[index].name)


@pytest.mark.parametrize("cfg", CLTS, ids=[c.activation for c in CLTS])
def test_two_latent_shards_train_the_single_process_clt_and_log(clt_runs, cfg):
    single, sharded = (directory / cfg.run_name() for directory in clt_runs)
    clt = CrossLayerTranscoder.load(sharded)
    assert (clt.cfg.run_name(), clt.cfg.skip_connection) == (cfg.run_name(), cfg.skip_connection)
    assert (sharded / "manifest.json").exists() and not (sharded / "checkpoint").exists()
    assert bool(clt.threshold.gt(0).all()) and (clt.W_skip is None or bool(clt.W_skip.any()))
    _assert_same(CrossLayerTranscoder.load(single), clt)
    _assert_same_log(single, sharded)


def test_clt_latent_shards_need_latents_that_divide_and_one_data_replica(tmp_path):
    with pytest.raises(MechscopeError, match="d_latent=63 must divide evenly over latent_shards=2"):
        train_clt(None, CLTConfig(3, 32, 63), tmp_path, TrainConfig(latent_shards=2))
    assert not any(tmp_path.iterdir())
    with pytest.raises(MechscopeError, match="the 4 processes must equal latent_shards=2"):
        check_clt_shardable(CLTConfig(3, 32, 64), 2, world=4)


def test_each_shard_takes_the_single_process_gradient_and_skip_and_bias_are_not_counted_per_shard(tmp_path):
    spawn(2, _shard_gradients, (tmp_path,))
    cfg, (x, y) = _gradient_case()
    full = _initialised(Dictionary(cfg))
    full.variant.loss(full, x, StepContext(1.0, target=y))["total"].backward()
    for shard in range(2):
        grads = load_file(tmp_path / f"shard{shard}.safetensors")
        for name, param in full.named_parameters():
            expected = param.grad if name in ("b_dec", "W_skip") else \
                param.grad.narrow(1 if name == "W_enc" else 0, 64 * shard, 64)
            torch.testing.assert_close(grads[name], expected, rtol=1e-5, atol=1e-7, msg=name)


def _gradient_case() -> tuple[DictionaryConfig, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 32, generator=g)
    return DictionaryConfig(32, 128, "topk", k=4, d_out=24, skip_connection=True), \
        (x, torch.relu(x @ torch.randn(32, 24, generator=g)))


def _initialised(module: Dictionary) -> Dictionary:
    """The seeded initialisation (a shard: its rows of it) and a nonzero skip connection, the same everywhere."""
    module.reset_parameters(seed=1)
    with torch.no_grad():
        module.W_skip.normal_(generator=torch.Generator().manual_seed(2))
    return module


def _shard_gradients(out) -> None:
    import torch.distributed as dist

    cfg, (x, y) = _gradient_case()
    part = _initialised(DictionaryShard(cfg, ShardLayout.create(2, dist.get_rank(), 2)))
    part.variant.loss(part, x, StepContext(1.0, target=y))["total"].backward()
    write_safetensors(out / f"shard{part.layout.shard}.safetensors",
                      {name: p.grad.contiguous() for name, p in part.named_parameters()})


@pytest.mark.slow
def test_a_sharded_clt_resumes_from_its_shard_checkpoints_bit_exactly(cache, clt_runs, tmp_path):
    cfg = CLTS[1]
    spawn(2, _train_clt_interrupted, (cache, tmp_path))
    checkpoint = tmp_path / cfg.run_name() / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["shard-0-of-2", "shard-1-of-2"]
    resumed = train_clt(cache, cfg, tmp_path, TrainConfig(**TRAIN, latent_shards=2, checkpoint_every=10))
    _assert_same(CrossLayerTranscoder.load(clt_runs[1] / cfg.run_name()), CrossLayerTranscoder.load(resumed),
                 exact=True)
    assert not checkpoint.exists()


def _train_clt_interrupted(cache, out) -> None:
    """Rank main: the data stops at step 15 as if the job were killed (a checkpoint was written at step 10)."""
    from mechscope.data import ActivationCache

    real = ActivationCache.batches

    def dies(self, *args, start=0, **kwargs):
        for i, batch in enumerate(real(self, *args, start=start, **kwargs)):
            if i == 15:
                raise KeyboardInterrupt
            yield batch
    ActivationCache.batches = dies
    try:
        train_clt(cache, CLTS[1], out, TrainConfig(**TRAIN, latent_shards=2, checkpoint_every=10))
    except KeyboardInterrupt:
        pass


@pytest.mark.slow
def test_two_replicas_of_two_latent_shards_train_the_single_process_transcoders(cache, singles, tmp_path):
    """Per-row (TopK) and dense selections; Matryoshka, like BatchTopK under DDP, picks its k x batch within each
    replica's rows, which is not the single-process batch's selection."""
    spawn(4, _train_transcoder_grid, (cache, tmp_path))
    for single, cfg in zip(singles, CONFIGS):
        if cfg.architecture != "matryoshka":
            _assert_same(load_dictionary(single), load_dictionary(tmp_path / single.name))


def _train_transcoder_grid(cache, out) -> None:
    """Rank main of a 4-process world: 2 data replicas x 2 latent shards."""
    train(cache, CONFIGS, out, TrainConfig(**TRAIN, latent_shards=2), hook=IN, hook_out=OUT)
