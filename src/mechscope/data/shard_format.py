"""Reading safetensors shards as numpy memmaps: random row access without loading the file."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import torch

from mechscope.data.atomic import atomic_file
from mechscope.errors import CorruptShardError

_NUMPY = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64, "I32": np.int32,
          "I64": np.int64}
_CODES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int32: "I32", torch.int64: "I64"}


def _raw(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (bf16 reinterpreted as int16, which numpy can hold)."""
    t = tensor.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return memoryview(t.numpy()).cast("B")


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write a standard safetensors file atomically, streaming each tensor's bytes; returns its sha256.

    Streaming avoids the full in-memory copy `safetensors.torch.save` makes, and hashing while
    writing avoids reading the file back: the two costs that made shard writes dominate a harvest.
    """
    header, offset = {}, 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data must start 8-byte aligned
    digest = hashlib.sha256()
    with atomic_file(path) as handle:
        for chunk in (struct.pack("<Q", len(blob)), blob, *(_raw(t) for t in tensors.values())):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def read_header(path: Path) -> tuple[dict, int]:
    """(tensor table, byte offset where data begins); a missing or truncated file names itself."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
    except FileNotFoundError as err:
        raise CorruptShardError(f"shard {path} is missing") from err
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, OverflowError, MemoryError) as err:
        raise CorruptShardError(f"shard {path} has a corrupt header") from err
    header.pop("__metadata__", None)
    data_start = 8 + size
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if path.stat().st_size < data_start + end:
        raise CorruptShardError(f"shard {path} is truncated: {path.stat().st_size} bytes, header needs "
                                f"{data_start + end}")
    return header, data_start


class ShardReader:
    """Memory-mapped tensors of one shard, as numpy arrays (bf16 kept as raw uint16)."""

    def __init__(self, path: Path):
        self.path = path
        self.header, self.data_start = read_header(path)
        self._maps: dict[str, np.memmap] = {}

    def array(self, name: str) -> np.ndarray:
        if name not in self._maps:
            entry = self.header[name]
            begin, _ = entry["data_offsets"]
            self._maps[name] = np.memmap(self.path, dtype=_NUMPY[entry["dtype"]], mode="r",
                                         offset=self.data_start + begin, shape=tuple(entry["shape"]))
        return self._maps[name]

    def rows(self, name: str, index: np.ndarray) -> torch.Tensor:
        """Rows `index` (sorted for locality by the caller) as a torch tensor in the stored dtype."""
        out = torch.from_numpy(np.ascontiguousarray(self.array(name)[index]))
        return out.view(torch.bfloat16) if self.header[name]["dtype"] == "BF16" else out
