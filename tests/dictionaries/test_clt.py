"""Cross-layer transcoders: training on a tiny model, exact replacement, circuit-tracer files both ways."""

from __future__ import annotations

import pytest
import torch
import yaml

from mechscope.data import harvest
from mechscope.dictionaries import TrainConfig, TranscoderSet
from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder
from mechscope.dictionaries.clt_training import train_clt
from mechscope.dictionaries.formats import circuit_tracer
from mechscope.dictionaries.replacement import clean_activations
from mechscope.errors import MechscopeError
from tests.dictionaries.exact_transcoders import TEXT, clt_from_transcoders, exact_set, relu_gpt2, replaced_logit_change

HOOKS = [f"blocks.{layer}.{h}" for layer in range(3) for h in ("ln2.hook_normalized", "hook_mlp_out")]


@pytest.fixture(scope="module")
def gpt2():
    return relu_gpt2()


@pytest.fixture(scope="module")
def cache(gpt2, tmp_path_factory):
    return harvest(gpt2, TEXT, HOOKS, tokens=768, out=tmp_path_factory.mktemp("clt") / "cache", context=16)


def per_layer_fvu(clt, gpt2) -> list[float]:
    xs, ys = (torch.stack(a, 1) for a in clean_activations(gpt2, clt, gpt2.to_tokens(TEXT[:8])))
    with torch.no_grad():
        error = (clt(xs) - ys).pow(2).sum((0, 2))
    return (error / (ys - ys.mean(0)).pow(2).sum((0, 2))).tolist()


def exact_clt(gpt2) -> CrossLayerTranscoder:
    """A CLT whose latents write only to their own layer, each block the MLP itself: the model exactly."""
    return clt_from_transcoders(exact_set(gpt2).dictionaries)


@pytest.mark.parametrize("activation,options", [("jumprelu", {"sparsity_coefficient": 0.01}), ("topk", {"k": 12})])
def test_a_trained_clt_predicts_every_mlp_output_far_better_than_a_random_one(gpt2, cache, tmp_path, activation,
                                                                             options):
    cfg = CLTConfig(3, 32, 64, activation=activation, **options)
    directory = train_clt(cache, cfg, tmp_path, TrainConfig(tokens=120 * 256, batch_size=256, lr=3e-3,
                                                            lr_warmup_steps=10, device="cpu"))
    clt = CrossLayerTranscoder.load(directory)
    assert clt.cfg == cfg and (directory / "manifest.json").exists()
    trained, random = per_layer_fvu(clt, gpt2), per_layer_fvu(CrossLayerTranscoder(cfg), gpt2)
    assert max(trained) < 0.5 and min(random) > 10 * max(trained)
    assert 0 < (clt.encode(torch.randn(4, 3, 32)) > 0).sum((1, 2)).float().mean() < 3 * 64


def test_the_exact_clt_replaces_every_mlp_without_changing_the_logits(gpt2):
    clt = exact_clt(gpt2)
    clt.check_against(gpt2)
    assert replaced_logit_change(gpt2, clt) < 1e-4
    with torch.no_grad():  # a cross-layer write from layer 0 into layer 2's output changes what the model computes
        clt.W_dec[0][:, 2].normal_()
    assert replaced_logit_change(gpt2, clt) > 1e-2
    assert replaced_logit_change(gpt2, clt, error_term=True) < 1e-4


def test_clt_files_round_trip_in_circuit_tracers_layout(gpt2, tmp_path):
    clt = exact_clt(gpt2)
    with torch.no_grad():
        for W in clt.W_dec:
            W.normal_()
        clt.threshold.uniform_(0, 0.1)
    clt.save(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["model_kind"] == "cross_layer_transcoder" and config["feature_output_hook"] == "hook_mlp_out"
    from safetensors.torch import load_file
    assert load_file(tmp_path / "W_dec_1.safetensors")["W_dec_1"].shape == (128, 2, 32)
    assert load_file(tmp_path / "W_enc_0.safetensors")["W_enc_0"].shape == (128, 32)
    loaded = CrossLayerTranscoder.load(tmp_path)
    xs = torch.randn(6, 3, 32)
    assert torch.equal(loaded(xs), clt(xs)) and loaded.input_hooks == clt.input_hooks


def test_a_clt_written_by_circuit_tracer_without_our_config_is_read(tmp_path):
    """Only the safetensors (no config.yaml): hooks default to circuit-tracer's resid_mid -> mlp_out, ReLU."""
    from mechscope.data.shard_format import write_safetensors

    g = torch.Generator().manual_seed(0)
    W_enc = [torch.randn(8, 4, generator=g) for _ in range(2)]
    W_dec = [torch.randn(8, 2 - i, 4, generator=g) for i in range(2)]
    for i in range(2):
        write_safetensors(tmp_path / f"W_enc_{i}.safetensors", {f"W_enc_{i}": W_enc[i], f"b_enc_{i}": torch.zeros(8),
                                                                 f"b_dec_{i}": torch.ones(4)})
        write_safetensors(tmp_path / f"W_dec_{i}.safetensors", {f"W_dec_{i}": W_dec[i]})
    clt = CrossLayerTranscoder.load(tmp_path)
    xs = torch.randn(5, 2, 4, generator=g)
    codes = [torch.relu(xs[:, i] @ W_enc[i].T) for i in range(2)]
    expected_1 = 1 + codes[0] @ W_dec[0][:, 1] + codes[1] @ W_dec[1][:, 0]
    torch.testing.assert_close(clt(xs)[:, 1], expected_1)
    assert clt.input_hooks == ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid"]


def test_corrupt_or_mismatched_clt_files_are_named(gpt2, tmp_path):
    exact_clt(gpt2).save(tmp_path)
    (tmp_path / "W_dec_2.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(MechscopeError, match="W_dec_2.safetensors: corrupt"):
        CrossLayerTranscoder.load(tmp_path)
    exact_clt(gpt2).save(tmp_path)
    from mechscope.data.shard_format import write_safetensors
    write_safetensors(tmp_path / "W_dec_1.safetensors", {"W_dec_1": torch.zeros(128, 3, 32)})
    with pytest.raises(MechscopeError, match="W_dec_1 has shape \\(128, 3, 32\\), expected \\(128, 2, 32\\)"):
        CrossLayerTranscoder.load(tmp_path)


def test_circuit_tracer_transcoder_set_round_trip(gpt2, tmp_path):
    tset = exact_set(gpt2)
    circuit_tracer.save_transcoder_set(tset, tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set" and config["feature_input_hook"] == "ln2.hook_normalized"
    assert config["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors", "layer_2.safetensors"]
    from safetensors.torch import load_file
    assert load_file(tmp_path / "layer_0.safetensors")["W_enc"].shape == (128, 32)
    assert replaced_logit_change(gpt2, TranscoderSet.load(tmp_path)) < 1e-4
    (tmp_path / "config.yaml").write_text("model_kind: cross_layer_transcoder\n")
    with pytest.raises(MechscopeError, match="expected 'transcoder_set'"):
        circuit_tracer.load_transcoder_set(tmp_path)


def test_circuit_tracers_own_mlp_hooks_bind_to_what_the_mlp_reads_and_writes(gpt2, tmp_path):
    """circuit-tracer's mlp.hook_in is the MLP's input, the pre-MLP norm's output with its affine: mechscope's
    ln2.hook_out. A transcoder equal to the MLP there (no affine folded in) must reproduce the model."""
    circuit_tracer.save_transcoder_set(exact_set(gpt2, hook="ln2.hook_out"), tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (config["feature_input_hook"], config["feature_output_hook"]) == ("mlp.hook_in", "hook_mlp_out")
    config["feature_output_hook"] = "mlp.hook_out"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    tset = TranscoderSet.load(tmp_path)
    assert (tset.dictionaries[1].cfg.hook_name, tset.dictionaries[1].cfg.hook_name_out) == (
        "blocks.1.ln2.hook_out", "blocks.1.hook_mlp_out")
    assert replaced_logit_change(gpt2, tset) < 1e-4


def test_a_topk_transcoder_set_is_refused_by_circuit_tracers_layout(tmp_path):
    from mechscope.dictionaries import Dictionary, DictionaryConfig

    d = Dictionary(DictionaryConfig(8, 16, "topk", k=2, hook_name="blocks.0.ln2.hook_normalized",
                                    hook_name_out="blocks.0.hook_mlp_out"))
    with pytest.raises(MechscopeError, match="TopK transcoder has no threshold"):
        circuit_tracer.save_transcoder_set(TranscoderSet([d], [0]), tmp_path)


def test_a_gemma_scope_transcoder_set_listed_by_circuit_tracer_is_read(gpt2, tmp_path):
    """gemmascope-l0-0.yaml's layout: config.yaml listing params.npz files (W_enc [d_model, d_transcoder])."""
    import numpy as np

    for layer, d in enumerate(exact_set(gpt2).dictionaries):
        (tmp_path / f"layer_{layer}").mkdir()
        np.savez(tmp_path / f"layer_{layer}/params.npz", W_enc=d.W_enc.detach().numpy(), W_dec=d.W_dec.detach().numpy(),
                 b_enc=d.b_enc.detach().numpy(), b_dec=d.b_dec.detach().numpy(), threshold=np.zeros(128, np.float32))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "model_name": "tiny", "model_kind": "transcoder_set", "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out", "transcoders": [f"layer_{i}/params.npz" for i in range(3)]}))
    tset = TranscoderSet.load(tmp_path)
    assert tset.dictionaries[2].cfg.hook_name_out == "blocks.2.hook_mlp_out" and tset.dictionaries[2].cfg.is_transcoder
    assert replaced_logit_change(gpt2, tset) < 1e-4


def test_topk_thresholds_let_as_many_latents_fire_at_inference_as_topk_chose():
    clt = CrossLayerTranscoder(CLTConfig(n_layers=3, d_in=16, d_latent=64, activation="topk", k=12))
    clt.reset_parameters(seed=0)
    xs = torch.randn(512, 3, 16)
    terms = clt.loss(xs, torch.randn(512, 3, 16), variance=1.0)
    clt.after_step(terms)  # the first step sets the thresholds outright (no EMA history)
    chosen = terms["chosen"].sum((0, 2))
    firing = (clt.encode(xs) > 0).sum((0, 2))
    assert torch.all((firing - chosen).abs() <= 1), (firing, chosen)  # per layer, as many as TopK chose
    assert abs(firing.sum().item() / 512 - 12) < 0.01  # so the inference L0 is k, not several times k
