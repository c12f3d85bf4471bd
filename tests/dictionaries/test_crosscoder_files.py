"""Crosscoder files: the SAELens layout with a source axis round-trips; dictionary_learning crosscoders load."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.crosscoder import decode_sources, encode_sources, source_decoder, source_encoder
from mechscope.dictionaries.formats import detect_format, load_dictionary, save_dictionary
from mechscope.errors import MechscopeError

N, D_IN, D_SAE = 3, 8, 24


def random_crosscoder(arch: str) -> Dictionary:
    torch.manual_seed(0)
    d = Dictionary(DictionaryConfig(N * D_IN, D_SAE, arch, n_sources=N, k=4))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if hasattr(d, "threshold"):
            d.threshold.fill_(0.3)
    return d


@pytest.mark.parametrize("arch", ["crosscoder", "crosscoder-l1"])
def test_saelens_layout_carries_the_source_axis_and_round_trips(tmp_path, arch):
    d = random_crosscoder(arch)
    save_dictionary(d, tmp_path / "cc")
    tensors = load_file(tmp_path / "cc" / "sae_weights.safetensors")
    assert tensors["W_enc"].shape == (N, D_IN, D_SAE) and tensors["W_dec"].shape == (D_SAE, N, D_IN)
    assert tensors["b_dec"].shape == (N, D_IN)
    torch.testing.assert_close(tensors["W_dec"][:, 1], d.W_dec.detach()[:, D_IN:2 * D_IN])  # source 1's slice
    cfg = json.loads((tmp_path / "cc" / "cfg.json").read_text())
    assert (cfg["d_in"], cfg["n_sources"]) == (D_IN, N)
    loaded = load_dictionary(tmp_path / "cc")
    x = torch.randn(32, N, D_IN)
    torch.testing.assert_close(encode_sources(loaded, x), encode_sources(d, x))
    codes = encode_sources(d, x)
    torch.testing.assert_close(decode_sources(loaded, codes), decode_sources(d, codes))


def _dictionary_learning_state(batch_topk: bool) -> dict:
    """A state dict in science-of-finetuning dictionary_learning's CrossCoder / BatchTopKCrossCoder layout."""
    g = torch.Generator().manual_seed(1)
    state = {"encoder.weight": torch.randn(N, D_IN, D_SAE, generator=g) * 0.3,
             "encoder.bias": torch.randn(D_SAE, generator=g) * 0.1,
             "decoder.weight": torch.randn(N, D_SAE, D_IN, generator=g) * 0.3,
             "decoder.bias": torch.randn(N, D_IN, generator=g) * 0.1, "code_normalization_id": torch.tensor(1)}
    if batch_topk:
        state.update(k=torch.tensor(4), threshold=torch.tensor(0.8))
    return state


def _reference(state: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What dictionary_learning computes: f = relu(sum_l x_l W_l + b), thresholded on f * sum_l ||W_dec_l||."""
    f = torch.einsum("bld,ldf->bf", x, state["encoder.weight"]).add(state["encoder.bias"]).relu()
    if "threshold" in state:
        f = f * (f * state["decoder.weight"].norm(dim=2).sum(0) > state["threshold"])
    return f, torch.einsum("bf,lfd->bld", f, state["decoder.weight"]) + state["decoder.bias"]


@pytest.mark.parametrize("batch_topk", [True, False], ids=["BatchTopKCrossCoder", "CrossCoder"])
def test_dictionary_learning_crosscoder_checkpoints_compute_what_they_computed(tmp_path, batch_topk):
    state = _dictionary_learning_state(batch_topk)
    torch.save(state, tmp_path / "ae.pt")
    (tmp_path / "config.json").write_text(json.dumps({"trainer": {"lm_name": "m", "submodule_name": "h"}}))
    assert detect_format(tmp_path) == "dictionary_learning"
    d = load_dictionary(tmp_path)
    assert d.cfg.architecture == ("crosscoder" if batch_topk else "crosscoder-l1") and d.cfg.n_sources == N
    torch.testing.assert_close(source_encoder(d), state["encoder.weight"])
    torch.testing.assert_close(source_decoder(d), state["decoder.weight"].permute(1, 0, 2))
    x = torch.randn(64, N, D_IN)
    f, x_hat = _reference(state, x)
    assert 0 < int((f > 0).sum()) < f.numel()
    torch.testing.assert_close(encode_sources(d, x), f)
    torch.testing.assert_close(decode_sources(d, encode_sources(d, x)), x_hat)


def test_other_code_normalisations_are_refused(tmp_path):
    state = {**_dictionary_learning_state(True), "code_normalization_id": torch.tensor(2)}
    torch.save(state, tmp_path / "ae.pt")
    with pytest.raises(MechscopeError, match="code_normalization_id 2"):
        load_dictionary(tmp_path)
