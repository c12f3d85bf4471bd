"""load_model from the built-in MiniLM, a local directory and bad names; the models CLI."""

from __future__ import annotations

import json

import pytest
import torch

import mechscope
from mechscope.cli import main
from mechscope.errors import ModelNotFoundError
from tests.conftest import tiny_hf, word_tokenizer


def test_minilm_hooks_match_hf_hidden_states_exactly(minilm):
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(mechscope.models.minilm_path(), local_files_only=True).eval()
    batch = minilm.encode(["Sparse autoencoders are dictionaries.", "Hello"])
    names = [f"blocks.{l}.hook_resid_post" for l in range(6)]
    _, cache = minilm.run_with_cache(batch, names=names)
    with torch.no_grad():
        hidden = hf(**batch, output_hidden_states=True).hidden_states
    for layer in range(6):
        assert torch.equal(cache[names[layer]], hidden[layer + 1])


def test_minilm_info_and_tokens_round_trip(minilm):
    assert (minilm.info.n_layers, minilm.info.d_model, minilm.info.n_heads) == (6, 384, 12)
    assert "ln_final.hook_normalized" not in minilm.hook_names()  # post-norm BERT has no final norm
    tokens = minilm.to_tokens("the cat sat")
    assert minilm.to_str_tokens(tokens[0]) == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    assert minilm.to_string(tokens[0, 1:-1]) == "the cat sat"


def test_load_local_directory_with_tokenizer(tmp_path):
    words = "the cat sat on a mat and dog ran".split()
    tokenizer = word_tokenizer(words)
    hf = tiny_hf("llama")
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = mechscope.load_model(str(tmp_path), device="cpu", dtype="float32")
    assert model.info.family == "llama" and model.info.n_layers == 3
    torch.testing.assert_close(model(["the cat sat"]), hf(model.to_tokens(["the cat sat"])).logits)


def test_bad_names_get_offline_alternatives(tmp_path):
    with pytest.raises(ModelNotFoundError, match="minilm"):
        mechscope.load_model(str(tmp_path / "missing"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        mechscope.load_model(str(tmp_path / "empty"), device="cpu")


def test_cli_models_inspect_minilm_json(capsys):
    assert main(["models", "inspect", "minilm", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_layers"] == 6 and result["d_model"] == 384
    assert result["hooks"]["blocks.0.attn.hook_z"] == ["batch", "pos", 12, 32]


def test_cli_reports_errors_without_traceback(capsys, tmp_path):
    assert main(["models", "inspect", str(tmp_path / "nope")]) == 2
    assert "Offline alternatives" in capsys.readouterr().err
