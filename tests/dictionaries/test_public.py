"""Public releases from local fixtures in each layout (never the network): ids resolve in the registry, files
convert once into the cache, widths and hooks are checked, and offline pulls say what they would download."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import mechscope
from mechscope.cli import main
from mechscope.dictionaries import Dictionary
from mechscope.dictionaries.formats import load_dictionary, save_dictionary
from mechscope.dictionaries.formats.circuit_tracer import save_transcoder_set
from mechscope.dictionaries.public import ReleaseUnavailableError, load_release, pull_release, resolve_release
from mechscope.dictionaries.releases import RELEASES, ReleaseError
from mechscope.dictionaries.transcoders import TranscoderSet
from mechscope.errors import MechscopeError
from tests.conftest import tiny_hf
from tests.dictionaries.test_formats import random_dictionary

D = 32
GS2 = "gemma-scope-2-270m-pt/resid_post_all/layer_1_width_16k_l0_small"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def dictionary(arch: str, width: int, d_in: int = D, **kw) -> Dictionary:
    """A random dictionary that names no hook (the release supplies it)."""
    return random_dictionary(arch, d_in, width, **{"hook_name": "", **kw})


def gemma_scope_2_folder(root, folder: str, width: int = 16384, **config) -> dict:
    """A Gemma Scope 2 folder as google/gemma-scope-2-* lays it out."""
    path = root / folder
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"w_enc": rng.normal(size=(D, width)).astype(np.float32) * 0.3,
              "w_dec": rng.normal(size=(width, D)).astype(np.float32) * 0.3,
              "b_enc": rng.normal(size=width).astype(np.float32) * 0.1,
              "b_dec": rng.normal(size=D).astype(np.float32) * 0.1,
              "threshold": np.abs(rng.normal(size=width)).astype(np.float32) * 0.2}
    save_file(arrays, str(path / "params.safetensors"))
    (path / "config.json").write_text(json.dumps({
        "hf_hook_point_in": "model.layers.1.output", "hf_hook_point_out": "model.layers.1.output", "width": width,
        "l0": 20, "architecture": "jump_relu", "affine_connection": False, "type": "sae",
        "model_name": "google/gemma-3-270m-pt", **config}))
    return arrays


def test_gemma_scope_2_folder_converts_to_the_same_jumprelu(tmp_path):
    arrays = gemma_scope_2_folder(tmp_path / "repo", GS2.split("/", 1)[1])
    loaded = load_release(GS2, source=tmp_path / "repo")
    assert loaded.cfg.hook_name == "blocks.1.hook_resid_post" and loaded.d_sae == 16384
    x = torch.randn(8, D)
    pre = x.numpy() @ arrays["w_enc"] + arrays["b_enc"]
    expected = np.where(pre > arrays["threshold"], pre, 0)
    assert np.allclose(loaded.encode(x).detach().numpy(), expected, atol=1e-5)
    manifest = json.loads((resolve_release(GS2).cached / "manifest.json").read_text())
    assert manifest["format"] == "mechscope.public_dictionary" and manifest["repo"] == "google/gemma-scope-2-270m-pt"
    again = load_dictionary(GS2)  # offline, from the cache
    assert torch.equal(again.W_enc, loaded.W_enc)


def test_gemma_scope_2_affine_flag_must_match_the_files_and_plain_transcoders_read(tmp_path):
    gemma_scope_2_folder(tmp_path, "affine", type="transcoder", affine_connection=True)
    with pytest.raises(MechscopeError, match="affine_connection=True"):
        load_dictionary(tmp_path / "affine")
    gemma_scope_2_folder(tmp_path, "tc", width=64, type="transcoder",
                         hf_hook_point_out="model.layers.1.post_feedforward_layernorm.output")
    transcoder = load_dictionary(tmp_path / "tc")
    assert (transcoder.cfg.hook_name, transcoder.cfg.hook_name_out) == ("blocks.1.hook_resid_post",
                                                                        "blocks.1.hook_mlp_out")


@pytest.mark.parametrize("release_id, fmt, arch, width, file, kw", [
    ("gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_82", "gemmascope", "jumprelu", 16384,
     "layer_1/width_16k/average_l0_82", {"apply_b_dec_to_input": False}),
    ("sae-llama-3-8b-32x/layers.1", "sparsify", "topk", 131072, "layers.1", {}),
    ("gpt2-small-res-jb/blocks.1.hook_resid_pre", "saelens", "relu", 24576, "blocks.1.hook_resid_pre", {}),
    ("gpt2-small-resid-post-v5-32k/blocks.1.hook_resid_post", "openai", "topk", 32768, "v5_32k_layer_1.pt",
     {"normalize_activations": "layer_norm"}),
])
def test_each_layout_pulls_from_a_local_copy_with_the_release_hook(tmp_path, release_id, fmt, arch, width, file,
                                                                    kw):
    original = dictionary(arch, width, d_in=8, **kw)
    save_dictionary(original, tmp_path / "repo" / file, fmt)
    loaded = load_release(release_id, source=tmp_path / "repo")
    x = torch.randn(16, 8)
    assert torch.allclose(loaded.encode(x), original.encode(x), atol=1e-6)
    entry = resolve_release(release_id)
    assert loaded.cfg.hook_name == entry.hook and loaded.cfg.model_name == entry.release.model


def test_the_model_check_names_hook_width_and_the_id_width(tmp_path):
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    save_dictionary(dictionary("relu", 24576, d_in=8), tmp_path / "repo/blocks.1.hook_resid_pre")
    with pytest.raises(MechscopeError, match="blocks.1.hook_resid_pre has width 32.*d_in=8"):
        load_release("gpt2-small-res-jb/blocks.1.hook_resid_pre", model, tmp_path / "repo")
    gemma_scope_2_folder(tmp_path / "narrow", GS2.split("/", 1)[1], width=64)
    with pytest.raises(ReleaseError, match="names width 16384, but .* holds 64 latents"):
        pull_release(GS2, tmp_path / "narrow")


def test_offline_pull_says_what_it_would_download_and_how_to_give_a_copy():
    with pytest.raises(ReleaseUnavailableError) as err:
        pull_release("gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82")
    message = str(err.value)
    assert "layer_12/width_16k/average_l0_82/params.npz" in message and "google/gemma-scope-2b-pt-res" in message
    assert "--from DIR" in message


def test_bad_ids_are_named():
    with pytest.raises(ReleaseError, match="no public release named 'gemma-scope-3'"):
        resolve_release("gemma-scope-3/layer_1")
    with pytest.raises(ReleaseError, match="does not follow this release's layout"):
        resolve_release("gemma-scope-2b-pt-res/layer_12/width_16k")
    with pytest.raises(ReleaseError, match="publishes widths 16k, 65k, not 1m"):
        resolve_release("gemma-scope-2b-pt-mlp/layer_1/width_1m/average_l0_5")
    with pytest.raises(ReleaseError, match="does not follow"):
        resolve_release("gemma-scope-2-1b-pt/clt/width_262k")


def test_transcoder_sets_are_pulled_whole_and_load_as_sets(tmp_path):
    layers = [dictionary("jumprelu", 16, hook_name=f"blocks.{i}.hook_mlp_in", hook_name_out=f"blocks.{i}.hook_mlp_out",
                         d_out=D) for i in range(2)]
    save_transcoder_set(TranscoderSet(layers, [0, 1], "tiny"), tmp_path / "set")
    loaded = load_release("circuit-tracer-llama-3.2-1b", source=tmp_path / "set")
    assert isinstance(loaded, TranscoderSet) and loaded.layers == [0, 1]
    assert torch.equal(loaded.dictionaries[1].W_enc, layers[1].W_enc)


def test_registry_covers_the_field_and_every_example_resolves():
    names = {r.name for r in RELEASES}
    assert {"gemma-scope-2b-pt-res", "gemma-scope-2-1b-it", "llama-scope-lxr-8x", "sae-llama-3-8b-32x",
            "gpt2-small-resid-post-v5-32k", "gpt2-small-res-jb", "circuit-tracer-gemma-2-2b"} <= names
    for release in RELEASES:
        if "{" not in release.example:
            entry = resolve_release(f"{release.name}/{release.example}" if release.example else release.name)
            assert entry.files and (entry.width or release.kind == "transcoder_set")


def test_cli_list_info_and_pull(tmp_path, capsys):
    gemma_scope_2_folder(tmp_path / "repo", GS2.split("/", 1)[1])
    assert main(["dictionaries", "info", GS2, "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["cached"] is None and info["files"][0] == "resid_post_all/layer_1_width_16k_l0_small/config.json"
    assert main(["dictionaries", "pull", GS2, "--from", str(tmp_path / "repo"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cached"] == str(resolve_release(GS2).cached)
    assert main(["dictionaries", "pull", "gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_5"]) == 2
    assert "--from DIR" in capsys.readouterr().err
    assert main(["dictionaries", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["releases"]) == len(RELEASES)


def test_llama_scope_folders_pull_from_a_local_copy(tmp_path):
    from tests.dictionaries.test_llama_scope import write_folder

    folder = tmp_path / "repo" / "Llama3_1-8B-Base-L15R-8x"
    write_folder(folder, hooks=("blocks.15.hook_resid_post",) * 2, width=32768)
    loaded = load_release("llama-scope-lxr-8x/L15R", source=tmp_path / "repo")
    x = torch.randn(4, loaded.d_in)
    assert torch.allclose(loaded(x), load_dictionary(folder)(x), atol=1e-6)
    assert loaded.cfg.hook_name == "blocks.15.hook_resid_post"


def test_gemma_scope_2_clts_and_crosscoders_pull_from_local_copies(tmp_path):
    from mechscope.dictionaries.clt import CrossLayerTranscoder
    from tests.dictionaries.test_gemmascope2_layers import layer_tensors, write_layers

    write_layers(tmp_path / "repo" / "clt" / "width_16k_l0_medium_affine",
                 [layer_tensors(i, affine=True) for i in range(3)])
    clt = load_release("gemma-scope-2-1b-pt/clt/width_16k_l0_medium_affine", source=tmp_path / "repo")
    assert isinstance(clt, CrossLayerTranscoder) and clt.W_skip is not None and clt.cfg.n_layers == 3
    shared = layer_tensors(0)
    files = [{**layer_tensors(i), **{k: shared[k] for k in ("w_dec", "b_enc", "threshold")}} for i in range(3)]
    for f in files:
        f["w_enc"], f["b_enc"], f["threshold"] = (torch.randn(6, 16384) * 0.1, torch.zeros(16384),
                                                  torch.full((16384,), 0.5))
        f["w_dec"] = torch.zeros(16384, 3, 6)
    write_layers(tmp_path / "repo" / "crosscoder" / "layer_1_4_7_width_16k_l0_small", files)
    entry = resolve_release("gemma-scope-2-1b-pt/crosscoder/layer_1_4_7_width_16k_l0_small")
    assert entry.kind == "crosscoder" and entry.width == 16384
    coder = load_release(entry.id, source=tmp_path / "repo")
    assert coder.cfg.n_sources == 3 and coder.cfg.hook_name.split(",")[2] == "blocks.7.hook_resid_post"


def test_hf_uris_in_a_transcoder_set_config_are_rewritten_to_local_files(tmp_path):
    from mechscope.dictionaries.formats.circuit_tracer import read_config, write_config
    from mechscope.dictionaries.public import parse_hf_uri

    layers = [dictionary("jumprelu", 16, hook_name=f"blocks.{i}.hook_mlp_in", hook_name_out=f"blocks.{i}.hook_mlp_out",
                         d_out=D) for i in range(2)]
    save_transcoder_set(TranscoderSet(layers, [0, 1], "tiny"), tmp_path / "set")
    store = tmp_path / "set" / "mntss" / "tc-repo" / "sub"
    store.mkdir(parents=True)
    for i in range(2):
        (tmp_path / "set" / f"layer_{i}.safetensors").rename(store / f"layer_{i}.safetensors")
    config = read_config(tmp_path / "set", "transcoder_set")
    uris = [f"hf://mntss/tc-repo/sub/layer_{i}.safetensors?revision=v2" for i in range(2)]
    write_config(tmp_path / "set", {**config, "transcoders": uris})
    assert parse_hf_uri(uris[1]) == ("mntss/tc-repo", "sub/layer_1.safetensors", "v2")
    loaded = load_release("circuit-tracer-llama-3.2-1b", source=tmp_path / "set")
    assert torch.equal(loaded.dictionaries[1].W_enc, layers[1].W_enc)
    rewritten = read_config(resolve_release("circuit-tracer-llama-3.2-1b").cached / "files", "transcoder_set")
    assert rewritten["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors"]
    write_config(tmp_path / "set", {**config, "transcoders": ["hf://mntss/elsewhere/missing.safetensors"]})
    with pytest.raises(ReleaseUnavailableError, match="hf://mntss/elsewhere/missing.safetensors"):
        pull_release("circuit-tracer-gemma-2-2b", tmp_path / "set")
