"""The memory estimate against byte counts worked out by hand."""

from __future__ import annotations

import json

import pytest

from mechscope.dictionaries import CLTConfig, Dictionary, DictionaryConfig
from mechscope.dictionaries.clt import CLT_STEP_ACTIVATIONS, CrossLayerTranscoder
from mechscope.dictionaries.clt_shards import CLTShard
from mechscope.dictionaries.latent_shards import DictionaryShard, ShardLayout
from mechscope.dictionaries.memory import estimate_clt_memory, estimate_memory
from mechscope.errors import MechscopeError


def test_estimate_equals_the_hand_count_for_two_shards():
    # d_in 8, 32 latents over 2 shards: 16 per rank; batch 16, k 2, k_aux = d_in // 2 = 4
    found = estimate_memory(DictionaryConfig(8, 32, "topk", k=2), batch_size=16, latent_shards=2)
    assert found.parameters == 4 * (8 * 16 + 16 + 16 * 8 + 8) == 1120
    assert (found.gradients, found.adam) == (1120, 2240)
    assert found.batch == 16 * 8 * (4 + 4 + 4) + 4 * 4 * 16 * 8  # read, float32, scaled; x_hat-sized terms
    assert found.pre_activations == 4 * 16 * 16  # [16 rows, 16 latents] float32
    assert found.codes == 16 * (2 + 4) * (4 + 8) * 3  # 2 shards' candidates and the merged winners
    assert found.training == 1120 + 1120 + 2240 + 3584 + 1024 + 3456
    assert found.initialisation == 1120 + 4 * 4096 * 16  # the first encode of 4096 tokens dominates here
    assert found.per_rank == found.initialisation and found.total == 2 * found.initialisation
    # rank 0 at the end: its shard, the gathered 32-latent dictionary and the file's contiguous W_enc [8, 32]
    assert found.saving == 1120 + 4 * (32 * (8 + 8 + 1) + 8) + 4 * 8 * 32


def test_bf16_cache_halves_the_read_and_replicas_split_the_batch():
    cfg = DictionaryConfig(8, 32, "topk", k=2)
    f32, bf16 = (estimate_memory(cfg, 16, 2, cache_dtype=dtype) for dtype in ("float32", "bfloat16"))
    assert f32.batch - bf16.batch == 16 * 8 * 2
    grid = estimate_memory(cfg, 16, latent_shards=2, replicas=2)
    assert grid.pre_activations == 4 * 8 * 16 and grid.ranks == 4


@pytest.mark.parametrize("arch", ["topk", "gated"])
def test_cli_estimate_prints_the_library_numbers(arch, capsys):
    from mechscope.cli import main

    assert main(["dictionaries", "estimate", "--d-in", "576", "--d-sae", "1048576", "--architecture", arch, "--k",
                 "32", "--batch-size", "4096", "--latent-shards", "8", "--cache-dtype", "bfloat16", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    expected = estimate_memory(DictionaryConfig(576, 1_048_576, arch, k=32), 4096, 8, cache_dtype="bfloat16")
    assert printed["per_rank"] == expected.per_rank and printed["total"] == 8 * expected.per_rank


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka", "relu", "jumprelu", "gated"])
def test_estimated_parameters_and_buffers_are_a_latent_shards_own_tensors(arch):
    cfg = DictionaryConfig(8, 32, arch, k=2)
    found = estimate_memory(cfg, batch_size=16, latent_shards=2)
    part = DictionaryShard(cfg, ShardLayout(shards=2, shard=1))
    assert found.parameters == 4 * sum(p.numel() for p in part.parameters())
    assert found.buffers == 4 * sum(b.numel() for b in part.buffers())


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka", "jumprelu"])
def test_estimated_saving_holds_the_shard_and_the_full_dictionary_that_rank_0_gathers(arch):
    cfg = DictionaryConfig(8, 32, arch, k=2, d_out=6, skip_connection=True)
    found = estimate_memory(cfg, batch_size=16, latent_shards=2)
    own, full = DictionaryShard(cfg, ShardLayout(shards=2, shard=0)), Dictionary(cfg)
    held = 4 * sum(t.numel() for m in (own, full) for t in [*m.parameters(), *m.buffers()])
    assert found.saving == held + 4 * (8 * 32 + 8 * 6)  # and the file's contiguous W_enc and W_skip.T
    unsharded = estimate_memory(cfg, batch_size=16)
    assert unsharded.saving == 4 * sum(t.numel() for t in [*full.parameters(), *full.buffers()]) + 4 * (8 * 32 + 8 * 6)


def test_dense_variants_hold_their_measured_step_and_no_top_k_codes():
    # JumpReLU, 2 shards of 16 latents: log_threshold is trained (gradient, Adam), threshold is a buffer
    found = estimate_memory(DictionaryConfig(8, 32, "jumprelu"), batch_size=16, latent_shards=2)
    assert found.parameters == 4 * (8 * 16 + 16 + 16 + 16 * 8 + 8) and found.buffers == 4 * 16
    assert (found.gradients, found.adam) == (found.parameters, 2 * found.parameters)
    assert found.pre_activations == 5.25 * 4 * 16 * 16 and found.codes == 0
    assert found.initialisation == found.parameters + 4 * (32 + 16) * 8  # no initial encode: the seeded draw


def test_estimate_refuses_what_latent_sharding_cannot_split():
    with pytest.raises(MechscopeError, match="latent sharding trains SAEs and per-layer transcoders of"):
        estimate_memory(DictionaryConfig(8, 32, "relu", relu_form="classic"), 16, latent_shards=2)


def test_a_skip_transcoder_holds_its_replicated_skip_its_targets_and_both_initial_draws():
    # JumpReLU 8 -> 6 with W_skip, 2 shards of 16 latents; no initial encode, so the seeded draws are the peak
    cfg = DictionaryConfig(8, 32, "jumprelu", d_out=6, skip_connection=True)
    found = estimate_memory(cfg, batch_size=16, latent_shards=2)
    part = DictionaryShard(cfg, ShardLayout(shards=2, shard=1))
    assert found.parameters == 4 * sum(p.numel() for p in part.parameters())
    assert found.parameters == 4 * (8 * 16 + 2 * 16 + 16 * 6 + 6 + 8 * 6)  # enc, b_enc/log_thr, dec, b_dec, skip
    assert found.batch == 16 * (8 + 6) * (4 + 4 + 4) + 4 * 4 * 16 * 6  # inputs and targets as read, x_hat-sized terms
    # the encoder rows of all 32 latents (+ this shard's 16 copied out) drawn while its 16 decoder rows are held
    assert found.initialisation == found.parameters + 4 * (16 * 6 + (32 + 16) * 8)


def test_cli_estimate_takes_a_transcoders_output_width_and_skip(capsys):
    from mechscope.cli import main

    assert main(["dictionaries", "estimate", "--d-in", "576", "--d-sae", "65536", "--architecture", "topk", "--d-out",
                 "576", "--skip-connection", "--latent-shards", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    expected = estimate_memory(DictionaryConfig(576, 65536, "topk", d_out=576, skip_connection=True), 4096, 2)
    assert printed["per_rank"] == expected.per_rank and printed["d_out"] == 576 and printed["skip_connection"]


@pytest.mark.parametrize("activation", ["jumprelu", "topk"])
def test_a_clt_estimate_holds_a_latent_shards_own_tensors_and_its_measured_step(activation):
    # 3 layers 8 -> 6 with W_skip, 32 latents per layer over 2 shards: 16 per layer per rank; batch 16
    cfg = CLTConfig(3, 8, 32, d_out=6, activation=activation, k=4, skip_connection=True)
    found = estimate_clt_memory(cfg, batch_size=16, latent_shards=2)
    part = CLTShard(cfg, ShardLayout(shards=2, shard=1))
    assert found.parameters == 4 * sum(p.numel() for p in part.parameters())
    # W_enc, b_enc and log_threshold, W_dec[i] [16, 3 - i, 6], b_dec, W_skip
    assert found.parameters == 4 * (3 * 8 * 16 + 2 * 3 * 16 + 16 * 6 * (3 + 2 + 1) + 3 * 6 + 3 * 8 * 6)
    assert found.buffers == 4 * sum(b.numel() for b in part.buffers()) == 4 * 3 * 16
    idle = 4 * 3 * 16 if activation == "topk" else 0  # a TopK CLT never trains log_threshold
    assert (found.gradients, found.adam) == (found.parameters - idle, 2 * (found.parameters - idle))
    assert found.pre_activations == int(CLT_STEP_ACTIVATIONS[activation] * 4 * 16 * 3 * 16)
    assert found.codes == (16 * 4 * (4 + 8) * 3 if activation == "topk" else 0)
    # rank 0 at the end: its shard, the full CLT, and W_enc [3, 8, 32] twice (the shards' pieces and their cat)
    held = 4 * sum(t.numel() for m in (CLTShard(cfg, ShardLayout(shards=2, shard=0)), CrossLayerTranscoder(cfg))
                   for t in [*m.parameters(), *m.buffers()])
    assert found.saving == held + 4 * 2 * 3 * 8 * 32


def test_a_clt_estimate_refuses_latents_that_do_not_divide():
    with pytest.raises(MechscopeError, match="d_latent=30 must divide evenly over latent_shards=4"):
        estimate_clt_memory(CLTConfig(2, 8, 30), 16, latent_shards=4)
