"""File formats: every converter round-trips encode/decode exactly; detection; corrupt and foreign files."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.cli import main
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.formats import convert, detect_format, load_dictionary, save_dictionary
from mechscope.errors import MechscopeError

CASES = [("saelens", a, {}) for a in ("relu", "topk", "batchtopk", "gated", "jumprelu", "matryoshka")] + [
    ("sparsify", "topk", {}), ("gemmascope", "jumprelu", {"apply_b_dec_to_input": False}),
    ("gemmascope2", "jumprelu", {"apply_b_dec_to_input": False}),
    ("dictionary_learning", "topk", {}), ("dictionary_learning", "relu", {}),
    ("dictionary_learning", "gated", {}), ("dictionary_learning", "jumprelu", {"apply_b_dec_to_input": False}),
    ("openai", "topk", {"normalize_activations": "layer_norm"}), ("openai", "relu", {})]


def random_dictionary(arch: str, d_in: int = 16, d_sae: int = 64, **kw) -> Dictionary:
    torch.manual_seed(0)
    kw = {"relu_form": "classic", "hook_name": "blocks.0.hook_resid_post", **kw}
    d = Dictionary(DictionaryConfig(d_in, d_sae, arch, k=4, **kw))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if hasattr(d, "threshold"):
            d.threshold.uniform_(0.0, 0.2)
    return d


@pytest.mark.parametrize("fmt, arch, kw", CASES, ids=[f"{f}-{a}" for f, a, _ in CASES])
def test_round_trip_gives_identical_codes_and_reconstructions(tmp_path, fmt, arch, kw):
    d = random_dictionary(arch, **kw)
    path = tmp_path / ("sae.pt" if fmt == "openai" else "sae")
    save_dictionary(d, path, fmt)
    assert detect_format(path) == fmt
    loaded = load_dictionary(path)
    x = torch.randn(40, 16)
    assert loaded.cfg.architecture == arch
    assert torch.equal(loaded.encode(x), d.encode(x)) and torch.equal(loaded(x), d(x))


@pytest.mark.parametrize("fmt", ["saelens", "gemmascope2", "sparsify"])
def test_loading_fills_every_tensor_without_a_random_draw(tmp_path, fmt):
    """Loaders build the dictionary uninitialised (a 131k x 2304 draw is 1.5 s); the file fills every tensor."""
    d = random_dictionary("jumprelu" if fmt == "gemmascope2" else "topk", apply_b_dec_to_input=fmt != "gemmascope2")
    save_dictionary(d, tmp_path / "sae", fmt)
    rng = torch.get_rng_state()
    loaded = load_dictionary(tmp_path / "sae")
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(loaded.W_enc, d.W_enc) and torch.equal(loaded.W_dec, d.W_dec)
    assert loaded.W_enc.T.is_contiguous()  # latent-major, as the sparse kernels read it


def test_convert_chain_through_foreign_formats_preserves_outputs(tmp_path):
    d = random_dictionary("topk")
    save_dictionary(d, tmp_path / "native")
    convert(tmp_path / "native", tmp_path / "sparsify", to="sparsify")
    convert(tmp_path / "sparsify", tmp_path / "dl", to="dictionary_learning")
    back = load_dictionary(tmp_path / "dl")
    x = torch.randn(10, 16)
    assert torch.equal(back(x), d(x))


def test_formats_refuse_what_they_cannot_express(tmp_path):
    with pytest.raises(MechscopeError, match="sparsify stores plain TopK"):
        save_dictionary(random_dictionary("jumprelu"), tmp_path / "x", "sparsify")
    with pytest.raises(MechscopeError, match="Gemma Scope"):
        save_dictionary(random_dictionary("topk"), tmp_path / "y", "gemmascope")


def test_corrupt_unknown_and_mismatched_files_get_clear_errors(tmp_path):
    d = random_dictionary("topk")
    save_dictionary(d, tmp_path / "ok")
    cfg = json.loads((tmp_path / "ok/cfg.json").read_text())
    cfg.pop("mechscope")
    cfg["architecture"] = "hypercube"
    (tmp_path / "ok/cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(MechscopeError, match="hypercube"):
        load_dictionary(tmp_path / "ok")
    save_dictionary(d, tmp_path / "bad")
    (tmp_path / "bad/sae_weights.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(MechscopeError, match="corrupt"):
        load_dictionary(tmp_path / "bad")
    save_dictionary(d, tmp_path / "shape")
    cfg = json.loads((tmp_path / "shape/cfg.json").read_text())
    cfg["mechscope"]["d_sae"] = 32
    (tmp_path / "shape/cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(MechscopeError, match=r"W_enc has shape \(16, 64\), expected \(16, 32\)"):
        load_dictionary(tmp_path / "shape")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MechscopeError, match="no known dictionary"):
        load_dictionary(tmp_path / "empty")


def test_foreign_saelens_config_without_mechscope_block(tmp_path):
    d = random_dictionary("jumprelu")
    save_dictionary(d, tmp_path / "s")
    cfg = json.loads((tmp_path / "s/cfg.json").read_text())
    cfg.pop("mechscope")  # what SAELens itself writes
    (tmp_path / "s/cfg.json").write_text(json.dumps(cfg))
    loaded = load_dictionary(tmp_path / "s")
    x = torch.randn(5, 16)
    assert torch.equal(loaded.encode(x), d.encode(x))
    assert loaded.cfg.hook_name == "blocks.0.hook_resid_post"


def test_cli_convert(tmp_path, capsys):
    save_dictionary(random_dictionary("topk"), tmp_path / "in")
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--to", "sparsify", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"from": "saelens", "to": "sparsify", "output": str(tmp_path / "out")}
    assert detect_format(tmp_path / "out") == "sparsify"
