"""Atomic writes: a full disk gives a clear error and leaves neither a partial file nor a temp file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mechscope.data import atomic
from mechscope.data.shard_format import write_safetensors
from mechscope.errors import DataError


def test_safetensors_writer_round_trips_every_dtype(tmp_path):
    tensors = {"f32": torch.randn(5, 3), "bf16": torch.randn(4).bfloat16(), "f16": torch.randn(2, 2).half(),
               "i32": torch.arange(7, dtype=torch.int32), "f64": torch.randn(3, dtype=torch.float64)}
    digest = write_safetensors(tmp_path / "x.safetensors", tensors)
    back = load_file(tmp_path / "x.safetensors")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    assert digest == atomic.sha256_file(tmp_path / "x.safetensors")


def test_disk_full_is_reported_and_the_old_file_survives(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    atomic.atomic_write_json(target, {"shards": [1, 2]})
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k:
                        FullDisk(real_open(p, mode)) if "w" in mode else real_open(p, mode, *a, **k))
    with pytest.raises(DataError, match="disk full.*resume"):
        atomic.atomic_write_json(target, {"shards": [1, 2, 3]})
    monkeypatch.undo()
    assert target.read_text().count("2") and not Path(str(target) + ".tmp").exists()
    assert '"shards"' in target.read_text() and "3" not in target.read_text()
