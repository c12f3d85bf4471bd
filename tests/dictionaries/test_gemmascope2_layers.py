"""Gemma Scope 2 affine transcoders, cross-layer transcoders and crosscoders: each forward equals the release's
own definition computed from the raw tensors; round-trips; clear errors."""

import json

import pytest
import torch

from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.clt import CrossLayerTranscoder
from mechscope.dictionaries.crosscoder import decode_sources, encode_sources
from mechscope.dictionaries.formats import circuit_tracer, gemmascope2, load_dictionary
from mechscope.dictionaries.transcoders import load_transcoders
from mechscope.errors import MechscopeError

D, F, N = 6, 10, 3


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def jumprelu(pre, threshold):
    return (pre > threshold) * pre.relu()


def layer_tensors(i, shared_dec=None, affine=False):
    t = {"w_enc": rand(D, F, seed=10 + i), "w_dec": shared_dec if shared_dec is not None else rand(F, N, D, seed=20 + i),
         "b_enc": rand(F, seed=30 + i) / 4, "b_dec": rand(D, seed=40 + i), "threshold": rand(F, seed=50 + i).abs() / 2}
    if affine:
        t["affine_skip_connection"] = rand(D, D, seed=60 + i) / 3
    return t


def test_affine_transcoder_adds_x_at_the_skip_matrix(tmp_path):
    folder = tmp_path / "transcoder_all" / "layer_1_width_16k_l0_small_affine"
    folder.mkdir(parents=True)
    t = {k: v for k, v in layer_tensors(0, affine=True).items()}
    t["w_dec"] = rand(F, D, seed=3)
    write_safetensors(folder / "params.safetensors", t)
    (folder / "config.json").write_text(json.dumps({
        "hf_hook_point_in": "model.layers.1.post_attention_layernorm.output",
        "hf_hook_point_out": "model.layers.1.post_feedforward_layernorm.output", "width": F,
        "architecture": "jump_relu", "affine_connection": True, "type": "transcoder"}))
    d = load_dictionary(folder)
    x = rand(16, D, seed=5) * 2
    expected = jumprelu(x @ t["w_enc"] + t["b_enc"], t["threshold"]) @ t["w_dec"] + t["b_dec"] + x @ t[
        "affine_skip_connection"]
    torch.testing.assert_close(d(x), expected)
    assert (d.cfg.hook_name, d.cfg.hook_name_out) == ("blocks.1.hook_attn_out", "blocks.1.hook_mlp_out")
    again = load_dictionary(gemmascope2.save(d, tmp_path / "again"))
    torch.testing.assert_close(again(x), expected)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "affine_connection": False}))
    with pytest.raises(MechscopeError, match="affine_connection=False"):
        load_dictionary(folder)


def write_layers(folder, files, config=None):
    folder.mkdir(parents=True)
    for i, t in enumerate(files):
        write_safetensors(folder / f"params_layer_{i}.safetensors", t)
    if config:
        (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("affine", [False, True])
def test_clt_forward_is_the_sum_over_earlier_layers_decoders(tmp_path, affine):
    files = [layer_tensors(i, affine=affine) for i in range(N)]
    folder = tmp_path / "clt" / f"width_16k_l0_medium{'_affine' if affine else ''}"
    write_layers(folder, files)
    clt = load_transcoders(folder)
    assert isinstance(clt, CrossLayerTranscoder) and (clt.W_skip is not None) == affine
    xs = rand(12, N, D, seed=7) * 2
    acts = [jumprelu(xs[:, i] @ f["w_enc"] + f["b_enc"], f["threshold"]) for i, f in enumerate(files)]
    for j in range(N):  # w_dec[:, j] of layers i > j (acausal) is ignored, as circuit-tracer ignores it
        expected = sum(acts[i] @ files[i]["w_dec"][:, j] for i in range(j + 1)) + files[j]["b_dec"]
        if affine:
            expected = expected + xs[:, j] @ files[j]["affine_skip_connection"]
        torch.testing.assert_close(clt(xs)[:, j], expected, rtol=1e-5, atol=1e-5)
    for save in (gemmascope2.save_clt, circuit_tracer.save_clt):
        written, rng = save(clt, tmp_path / save.__module__.rsplit(".", 1)[1]), torch.get_rng_state()
        again = CrossLayerTranscoder.load(written)
        assert torch.equal(torch.get_rng_state(), rng)  # built uninitialised: the files fill every tensor
        torch.testing.assert_close(again(xs), clt(xs))


def test_crosscoder_reads_every_layer_into_one_latent_space(tmp_path):
    shared = rand(F, N, D, seed=1)
    files = [layer_tensors(i, shared_dec=shared) for i in range(N)]
    for f in files[1:]:
        f.update(b_enc=files[0]["b_enc"], threshold=files[0]["threshold"])
    folder = tmp_path / "crosscoder" / "layer_2_5_9_width_16k_l0_small"
    write_layers(folder, files)
    d = load_dictionary(folder)
    assert d.cfg.n_sources == N and d.cfg.hook_name == "blocks.2.hook_resid_post,blocks.5.hook_resid_post," \
                                                      "blocks.9.hook_resid_post"
    xs = rand(12, N, D, seed=8)
    acts = jumprelu(sum(xs[:, i] @ files[i]["w_enc"] for i in range(N)) + files[0]["b_enc"], files[0]["threshold"])
    torch.testing.assert_close(encode_sources(d, xs), acts, rtol=1e-5, atol=1e-5)
    expected = torch.stack([acts @ shared[:, i] + files[i]["b_dec"] for i in range(N)], dim=1)
    torch.testing.assert_close(decode_sources(d, acts), expected, rtol=1e-5, atol=1e-5)
    again = load_dictionary(gemmascope2.save_crosscoder(d, tmp_path / "crosscoder-again"))
    torch.testing.assert_close(again(xs.flatten(1)), d(xs.flatten(1)))


def test_layer_folders_that_do_not_fit_get_clear_errors(tmp_path):
    files = [layer_tensors(i, shared_dec=rand(F, N, D, seed=1)) for i in range(N)]
    write_layers(tmp_path / "cc", files, {"type": "crosscoder"})
    with pytest.raises(MechscopeError, match="b_enc differs"):
        load_dictionary(tmp_path / "cc")
    write_layers(tmp_path / "clt", [layer_tensors(i) for i in range(N)], {"type": "clt"})
    with pytest.raises(MechscopeError, match="load_transcoders"):
        load_dictionary(tmp_path / "clt")
    short = [layer_tensors(i) for i in range(N - 1)]
    write_layers(tmp_path / "short", short, {"type": "clt"})
    with pytest.raises(MechscopeError, match=r"expected \[width, 2, d\]"):
        load_transcoders(tmp_path / "short")
