"""Per-layer transcoders: training from paired activations, scale folding, SAELens files, TranscoderSet."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.data import harvest
from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, TranscoderSet, train
from mechscope.dictionaries.formats import load_dictionary, saelens
from mechscope.errors import HookNameError, MechscopeError
from tests.dictionaries.exact_transcoders import TEXT, exact_set, relu_gpt2, replaced_logit_change

D_IN, D_MLP, D_OUT = 16, 48, 12
_g = torch.Generator().manual_seed(0)
W1, B1, W2 = torch.randn(D_IN, D_MLP, generator=_g) / 4, torch.randn(D_MLP, generator=_g) * 0.1 - 0.3, \
    torch.randn(D_MLP, D_OUT, generator=_g) / 8


def mlp_pairs(seed: int = 1, n: int = 256):
    """(x, MLP(x)) batches of a fixed random ReLU MLP: what a transcoder learns to imitate."""
    g = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(n, D_IN, generator=g)
        yield x, torch.relu(x @ W1 + B1) @ W2 + 0.5


def fvu(d, x, y) -> float:
    with torch.no_grad():
        return ((d(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    configs = [DictionaryConfig(D_IN, 96, "topk", k=8), DictionaryConfig(D_IN, 96, "batchtopk", k=8, skip_connection=True),
               DictionaryConfig(D_IN, 96, "jumprelu", target_l0=8, l0_coefficient=1.0)]
    dirs = train(mlp_pairs(), configs, tmp_path_factory.mktemp("tc"),
                 TrainConfig(tokens=150 * 256, batch_size=256, lr=3e-3, lr_warmup_steps=10, log_every=10**6,
                             checkpoint_every=10**9, device="cpu"))
    return {p.name.split("_")[0]: load_dictionary(p) for p in dirs}


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_a_transcoder_trained_on_an_mlp_explains_its_output_far_better_than_a_random_one(trained, arch):
    x, y = next(mlp_pairs(seed=99, n=2048))
    d = trained[arch]
    assert d.cfg.d_out == D_OUT and d.cfg.is_transcoder and not d.cfg.apply_b_dec_to_input
    random = Dictionary(d.cfg)
    assert fvu(d, x, y) < 0.6 and fvu(random, x, y) > 5 * fvu(d, x, y)
    assert 0 < (d.encode(x) > 0).float().sum(-1).mean().item() < 16


def test_skip_connection_is_trained_and_saved_in_saelens_orientation(trained, tmp_path):
    d = trained["batchtopk"]
    assert d.W_skip.abs().sum() > 0
    saelens.save(d, tmp_path / "tc")
    raw = json.loads((tmp_path / "tc/cfg.json").read_text())
    assert raw["architecture"] == "jumprelu_skip_transcoder" and raw["d_out"] == D_OUT
    from safetensors.torch import load_file
    assert torch.equal(load_file(tmp_path / "tc/sae_weights.safetensors")["W_skip"], d.W_skip.detach().T)


def test_fold_activation_scale_with_separate_input_and_output_scales():
    torch.manual_seed(0)
    d = Dictionary(DictionaryConfig(D_IN, 32, "jumprelu", d_out=D_OUT, skip_connection=True))
    with torch.no_grad():
        for p in (d.W_enc, d.W_dec, d.b_dec, d.W_skip):
            p.normal_()
        d.threshold.fill_(0.1)
    x = torch.randn(64, D_IN)
    scaled_prediction = d(x * 3.0) / 0.5  # trained on 3x, predicting 0.5y
    d.fold_activation_scale(3.0, 0.5)
    torch.testing.assert_close(d(x), scaled_prediction, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch,skip,name", [("relu", False, "transcoder"), ("relu", True, "skip_transcoder"),
                                            ("jumprelu", False, "jumprelu_transcoder"),
                                            ("topk", True, "topk_skip_transcoder")])
def test_saelens_transcoder_round_trip_keeps_predictions(tmp_path, arch, skip, name):
    d = Dictionary(DictionaryConfig(D_IN, 32, arch, k=4, d_out=D_OUT, skip_connection=skip, hook_name="blocks.0.a",
                                    hook_name_out="blocks.0.b"))
    with torch.no_grad():
        for p in d.parameters():
            p.normal_()
    saelens.save(d, tmp_path)
    assert json.loads((tmp_path / "cfg.json").read_text())["architecture"] == name
    loaded = saelens.load(tmp_path)
    x = torch.randn(20, D_IN)
    assert torch.equal(loaded(x), d(x)) and loaded.cfg.hook_name_out == "blocks.0.b"


def test_a_transcoder_file_as_saelens_writes_it_is_read(tmp_path):
    """SAELens's JumpReLUSkipTranscoder: cfg.json without mechscope's config, W_skip [d_out, d_in]."""
    from mechscope.data.shard_format import write_safetensors

    g = torch.Generator().manual_seed(3)
    t = {"W_enc": torch.randn(D_IN, 8, generator=g), "b_enc": torch.randn(8, generator=g),
         "W_dec": torch.randn(8, D_OUT, generator=g), "b_dec": torch.randn(D_OUT, generator=g),
         "threshold": torch.rand(8, generator=g), "W_skip": torch.randn(D_OUT, D_IN, generator=g)}
    write_safetensors(tmp_path / "sae_weights.safetensors", t)
    (tmp_path / "cfg.json").write_text(json.dumps({
        "architecture": "jumprelu_skip_transcoder", "d_in": D_IN, "d_sae": 8, "d_out": D_OUT,
        "apply_b_dec_to_input": False, "metadata": {"hook_name": "blocks.1.ln2.hook_normalized",
                                                    "hook_name_out": "blocks.1.hook_mlp_out"}}))
    d = load_dictionary(tmp_path)
    x = torch.randn(10, D_IN, generator=g)
    pre = x @ t["W_enc"] + t["b_enc"]
    expected = (pre * (pre > t["threshold"])) @ t["W_dec"] + t["b_dec"] + x @ t["W_skip"].T
    torch.testing.assert_close(d(x), expected)
    assert d.cfg.hook_name_out == "blocks.1.hook_mlp_out"


def test_gated_and_classic_relu_transcoders_are_refused():
    with pytest.raises(MechscopeError, match="Gated"):
        DictionaryConfig(D_IN, 32, "gated", d_out=D_OUT)
    with pytest.raises(MechscopeError, match="anthropic"):
        DictionaryConfig(D_IN, 32, "relu", relu_form="classic", hook_name_out="blocks.0.hook_mlp_out")


def test_a_transcoder_needs_paired_activations():
    single = (torch.randn(256, D_IN) for _ in range(10))
    with pytest.raises(MechscopeError, match="pairs"):
        train(single, DictionaryConfig(D_IN, 32, "topk", k=4, d_out=D_OUT), "/nonexistent", TrainConfig(tokens=512))


# ----- transcoder sets on a tiny ReLU GPT-2 --------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2():
    return relu_gpt2()


def test_exact_transcoders_reproduce_every_mlp_and_the_replaced_model_equals_the_original(gpt2):
    tset = exact_set(gpt2)
    tset.check_against(gpt2)
    assert replaced_logit_change(gpt2, tset) < 1e-4
    with torch.no_grad():  # and a transcoder that is not the MLP does change the output
        tset.dictionaries[1].W_dec.mul_(0.5)
    assert replaced_logit_change(gpt2, tset) > 1e-2


def test_transcoder_set_round_trip(gpt2, tmp_path):
    tset = exact_set(gpt2)
    tset.save(tmp_path / "set")
    loaded = TranscoderSet.load(tmp_path / "set")
    assert loaded.layers == [0, 1, 2] and loaded.output_hooks == tset.output_hooks
    x = torch.randn(5, 32)
    for a, b in zip(loaded.dictionaries, tset.dictionaries):
        assert torch.equal(a(x), b(x))
    assert (tmp_path / "set/manifest.json").exists()


def test_check_against_names_hook_width_and_layer_count_mismatches(gpt2):
    tset = exact_set(gpt2)
    with pytest.raises(MechscopeError, match="3 layers.*\\[0, 1\\]"):
        TranscoderSet(tset.dictionaries[:2], [0, 1]).check_against(gpt2)
    TranscoderSet(tset.dictionaries[:2], [0, 1]).check_against(gpt2, every_layer=False)
    wrong_width = Dictionary(DictionaryConfig(16, 8, "relu", hook_name="blocks.2.ln2.hook_normalized",
                                              hook_name_out="blocks.2.hook_mlp_out"))
    with pytest.raises(MechscopeError, match="width 32.*input width is 16"):
        TranscoderSet(tset.dictionaries[:2] + [wrong_width], [0, 1, 2]).check_against(gpt2)
    with pytest.raises(MechscopeError, match="belongs to layer 0"):
        TranscoderSet([tset.dictionaries[0]] * 3, [0, 1, 2]).check_against(gpt2)
    misnamed = Dictionary(DictionaryConfig(32, 8, "relu", hook_name="blocks.2.mlp_in", hook_name_out="blocks.2.x"))
    with pytest.raises(HookNameError):
        TranscoderSet(tset.dictionaries[:2] + [misnamed], [0, 1, 2]).check_against(gpt2)


def test_transcoders_train_from_a_cache_holding_both_hooks_aligned(gpt2, tmp_path):
    hooks = ["blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"]
    cache = harvest(gpt2, TEXT, hooks, tokens=768, out=tmp_path / "cache", context=16)
    dirs = train(cache, DictionaryConfig(32, 64, "topk", k=8), tmp_path / "runs",
                 TrainConfig(tokens=2048, batch_size=256, device="cpu"), hook=hooks[0], hook_out=hooks[1])
    d = load_dictionary(dirs[0])
    assert (d.cfg.hook_name, d.cfg.hook_name_out, d.cfg.d_out) == (hooks[0], hooks[1], 32)
    ids = gpt2.to_tokens(TEXT[:2])
    _, acts = gpt2.run_with_cache(ids, names=hooks)
    x, y = (acts[h].reshape(-1, 32) for h in hooks)
    exact = exact_set(gpt2).dictionaries[1]  # the cached pairs are the MLP's own input and output
    torch.testing.assert_close(exact(x), y, rtol=1e-4, atol=1e-5)
    assert fvu(d, x, y) < fvu(Dictionary(d.cfg), x, y)
