"""Llama Scope (lm_saes) files: known answers from lm_saes's training-time forward, round-trips, clear errors."""

import json
import math

import pytest
import torch

from mechscope.dictionaries.formats import convert, detect_format, load_dictionary
from mechscope.dictionaries.formats import llama_scope
from mechscope.data.shard_format import write_safetensors
from mechscope.errors import MechscopeError

D, F = 8, 24


def write_folder(path, act="jumprelu", threshold=0.3, norms=(3.0, 3.0), hooks=("blocks.0.hook_resid_post",) * 2,
                 decoder_norm=True, pre_bias=False, seed=0, width=F):
    g = torch.Generator().manual_seed(seed)
    tensors = {"encoder.weight": torch.randn(width, D, generator=g) / 2,
               "encoder.bias": torch.randn(width, generator=g) / 4,
               "decoder.weight": torch.randn(D, width, generator=g) * torch.rand(width, generator=g),
               "decoder.bias": torch.randn(D, generator=g)}
    (path / "checkpoints").mkdir(parents=True)
    write_safetensors(path / "checkpoints" / "final.safetensors", tensors)
    (path / "hyperparams.json").write_text(json.dumps({
        "d_model": D, "d_sae": width, "act_fn": act, "jump_relu_threshold": threshold, "top_k": 4,
        "norm_activation": "dataset-wise", "dataset_average_activation_norm": {"in": norms[0], "out": norms[1]},
        "sparsity_include_decoder_norm": decoder_norm, "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": pre_bias, "hook_point_in": hooks[0], "hook_point_out": hooks[1]}))
    return tensors


def training_forward(t, x, norms, act, threshold=0.3, k=4):
    """lm_saes as it trains: normalised input, latents ranked (TopK) at relu(pre) * ||decoder column||, output
    in the normalised target space, brought back to raw units by 1 / s_out."""
    s_in, s_out = (math.sqrt(D) / n for n in norms)
    pre = (x * s_in) @ t["encoder.weight"].T + t["encoder.bias"]
    dn = (t["decoder.weight"] * (s_in / s_out)).norm(dim=0)
    if act == "topk":
        ranked = pre.relu() * dn
        idx = ranked.topk(k, dim=-1).indices
        codes = torch.zeros_like(pre).scatter(-1, idx, pre.relu().gather(-1, idx))
    else:  # the threshold applies to lm_saes's inference pre-activations: pre / s_in * ||standardised decoder||
        codes = pre * (pre / s_in * dn > threshold)
    return (codes @ t["decoder.weight"].T + t["decoder.bias"]) / s_out


@pytest.mark.parametrize("act", ["topk", "jumprelu"])
@pytest.mark.parametrize("norms", [(3.0, 3.0), (3.0, 5.0)])
def test_reconstruction_equals_lm_saes_training_forward(tmp_path, act, norms):
    hooks = ("blocks.0.hook_resid_post",) * 2 if norms[0] == norms[1] else ("blocks.0.ln2.hook_normalized",
                                                                            "blocks.0.hook_mlp_out")
    t = write_folder(tmp_path / "sae", act=act, norms=norms, hooks=hooks, threshold=0.0 if act == "topk" else 0.3)
    assert detect_format(tmp_path / "sae") == "llama_scope"
    d = load_dictionary(tmp_path / "sae")
    x = torch.randn(64, D) * 2
    assert d.cfg.architecture == act and (d.cfg.hook_name, d.cfg.hook_name_out or d.cfg.hook_name) == hooks
    torch.testing.assert_close(d(x), training_forward(t, x, norms, act), rtol=1e-4, atol=1e-4)
    if act == "jumprelu":  # some latents fire and some do not: the threshold is doing work
        assert 0 < (d.encode(x) > 0).float().mean() < 1


def test_a_decoder_bias_subtracted_before_the_encoder_is_folded_into_b_enc(tmp_path):
    t = write_folder(tmp_path / "sae", act="topk", threshold=0.0, pre_bias=True, decoder_norm=False)
    d = load_dictionary(tmp_path / "sae")
    s = math.sqrt(D) / 3.0
    x = torch.randn(16, D)
    pre = (x * s - t["decoder.bias"]) @ t["encoder.weight"].T + t["encoder.bias"]
    torch.testing.assert_close(d.pre_activations(x) * s, pre, rtol=1e-4, atol=1e-4)


def test_round_trip_through_the_llama_scope_layout(tmp_path):
    write_folder(tmp_path / "sae")
    d = load_dictionary(tmp_path / "sae")
    convert(tmp_path / "sae", tmp_path / "again", to="llama_scope")
    again = load_dictionary(tmp_path / "again")
    x = torch.randn(32, D)
    torch.testing.assert_close(again.encode(x), d.encode(x))
    torch.testing.assert_close(again(x), d(x))


def test_unreadable_files_get_errors_naming_what_was_expected(tmp_path):
    write_folder(tmp_path / "tokenwise")
    raw = json.loads((tmp_path / "tokenwise" / "hyperparams.json").read_text())
    (tmp_path / "tokenwise" / "hyperparams.json").write_text(json.dumps({**raw, "norm_activation": "token-wise"}))
    with pytest.raises(MechscopeError, match="dataset-wise"):
        llama_scope.load(tmp_path / "tokenwise")
    write_folder(tmp_path / "broken")
    (tmp_path / "broken" / "checkpoints" / "final.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(MechscopeError, match="corrupt Llama Scope"):
        llama_scope.load(tmp_path / "broken")
    with pytest.raises(MechscopeError, match="hyperparams.json"):
        llama_scope.load(tmp_path)
