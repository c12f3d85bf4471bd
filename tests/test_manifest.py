"""The one manifest writer: shared provenance keys, file checksums that match, input hashes that identify."""

from __future__ import annotations

import hashlib
import json

import torch
import transformers

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.manifest import MANIFEST_FILE, build_manifest, input_record, write_manifest
from mechscope.synthetic import SyntheticFeatures

SHARED = {"format", "format_version", "mechscope_version", "versions", "created", "model", "config", "inputs"}


def test_a_trained_dictionary_records_shared_keys_and_checksums_of_its_files(tmp_path):
    data = SyntheticFeatures(n_features=32, d=16, active=2, seed=0)
    cfg = DictionaryConfig(16, 32, "topk", k=2)
    (directory,) = train(data, cfg, tmp_path, TrainConfig(tokens=4 * 64, batch_size=64))
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert SHARED <= set(manifest) and manifest["format"] == "mechscope.dictionary"
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["transformers"] == transformers.__version__
    assert manifest["config"] == cfg.to_dict() and manifest["name"] == "topk_32_k2"  # keys readers relied on stay
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    # the next stage identifies this dictionary by its manifest, which pins its files
    assert input_record(directory)["sha256"] == hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()


def test_a_directory_without_manifest_is_hashed_over_its_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"beta")
    files = "".join(f"{name}\0{hashlib.sha256(body).hexdigest()}\n"
                    for name, body in (("a.bin", b"alpha"), ("sub/b.bin", b"beta")))
    assert input_record(tmp_path)["sha256"] == hashlib.sha256(files.encode()).hexdigest()
    before = input_record(tmp_path)["sha256"]
    (tmp_path / "a.bin").write_bytes(b"alphA")
    assert input_record(tmp_path)["sha256"] != before


def test_artefact_keys_follow_the_shared_ones_and_the_file_round_trips(tmp_path):
    described = {"name": "m", "fingerprint": "abc", "quantization": "q4"}
    manifest = build_manifest("mechscope.test", model=described, config=DictionaryConfig(4, 8, k=2), tokens=12)
    assert manifest["model"] == described and manifest["config"]["d_sae"] == 8 and manifest["tokens"] == 12
    assert manifest["created"].endswith("+00:00")
    assert json.loads(write_manifest(tmp_path, manifest).read_text()) == manifest
