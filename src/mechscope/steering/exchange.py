"""Per-layer steering vectors as llama.cpp GGUF control vectors, the format repeng exports too.

A control vector file has `general.architecture = "controlvector"`, `controlvector.model_hint` (the
model type, e.g. "llama"), `controlvector.layer_count` and one float32 tensor `direction.{layer}` [d_model]
per layer. llama.cpp (common_control_vector_load_one, llama_adapter_cvec) adds `direction.N` to the
output of block N, counted from 0 — our `blocks.{N}.hook_resid_post` — and rejects `direction.0`;
repeng's `ControlVector.directions[N]` is added to the output of `model.layers[N]`, the same hook.
Anything else mechscope knows about the vector travels as JSON under `mechscope.metadata`, which
llama.cpp and repeng ignore.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mechscope.errors import MechscopeError, MissingPackageError

ARCHITECTURE = "controlvector"
METADATA_KEY = "mechscope.metadata"
HOOK = "blocks.{layer}.hook_resid_post"  # where direction.{layer} is added, in llama.cpp and repeng alike


class VectorFileError(MechscopeError):
    """A control vector that cannot be written as asked, or a file that holds none."""


@dataclass(frozen=True)
class ControlVectorFile:
    """What a control vector file holds: directions by layer, the model hint and mechscope's metadata."""

    directions: dict[int, Tensor]  # layer -> [d_model] float32, added at HOOK.format(layer=layer)
    model_hint: str
    metadata: dict = field(default_factory=dict)

    def hook_names(self) -> dict[int, str]:
        """The hook each layer's direction belongs to."""
        return {layer: HOOK.format(layer=layer) for layer in self.directions}


def _checked(directions: dict[int, Tensor]) -> dict[int, np.ndarray]:
    """The directions as float32 arrays of one length, keyed by layers >= 1 (llama.cpp has no layer 0)."""
    if not directions:
        raise VectorFileError("expected at least one direction {layer: Tensor[d_model]}, got none")
    arrays = {}
    for layer, vector in sorted(directions.items()):
        array = torch.as_tensor(vector).detach().cpu().float().numpy()
        if not isinstance(layer, int) or layer < 1:
            raise VectorFileError(f"layers must be ints >= 1 (llama.cpp rejects direction.0 and adds direction.N "
                                  f"after block N), got {layer!r}")
        if array.ndim != 1 or not np.isfinite(array).all():
            raise VectorFileError(f"direction {layer} must be a finite 1-D vector [d_model], got shape {array.shape}")
        arrays[layer] = array
    if len({a.size for a in arrays.values()}) != 1:
        raise VectorFileError(f"directions must share one d_model, got {({k: a.size for k, a in arrays.items()})}")
    return arrays


def write_control_vector(path: str | os.PathLike, directions: dict[int, Tensor], model_hint: str,
                         metadata: dict | None = None) -> Path:
    """Write `directions` as a llama.cpp control vector GGUF (atomically) and return its path."""
    import gguf

    arrays = _checked(directions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
    writer.add_string(f"{ARCHITECTURE}.model_hint", model_hint)
    writer.add_uint32(f"{ARCHITECTURE}.layer_count", len(arrays))
    writer.add_string(METADATA_KEY, json.dumps(metadata or {}, sort_keys=True))
    for layer, array in arrays.items():
        writer.add_tensor(f"direction.{layer}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def _string(reader, key: str) -> str | None:
    found = reader.get_field(key)
    return None if found is None else str(found.contents())


def read_control_vector(path: str | os.PathLike) -> ControlVectorFile:
    """A control vector GGUF written by mechscope, llama.cpp's cvector-generator or repeng."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as err:
        raise VectorFileError(f"{path} is not a readable GGUF file: {err}") from err
    kind = _string(reader, "general.architecture")
    if kind != ARCHITECTURE:
        raise VectorFileError(f"{path}: expected general.architecture {ARCHITECTURE!r}, got {kind!r}")
    directions = {}
    for tensor in reader.tensors:
        prefix, _, layer = tensor.name.partition(".")
        if prefix != "direction" or not layer.isdigit():
            raise VectorFileError(f"{path}: expected tensors named direction.<layer>, got {tensor.name!r}")
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or len(tensor.shape) != 1:
            raise VectorFileError(f"{path}: {tensor.name} must be a 1-D F32 tensor, got "
                                  f"{tensor.tensor_type.name} with shape {tuple(tensor.shape)}")
        directions[int(layer)] = torch.from_numpy(np.array(tensor.data, dtype=np.float32))
    metadata = _string(reader, METADATA_KEY)
    return ControlVectorFile(dict(sorted(directions.items())), _string(reader, f"{ARCHITECTURE}.model_hint") or "",
                             json.loads(metadata) if metadata else {})


def from_repeng(vector) -> ControlVectorFile:
    """A repeng `ControlVector` (model_type, directions {layer: ndarray}) as mechscope tensors; layers keep their
    numbers, since repeng's layer N is our blocks.N.hook_resid_post."""
    return ControlVectorFile({int(layer): torch.as_tensor(np.asarray(array, dtype=np.float32))
                              for layer, array in sorted(vector.directions.items())}, vector.model_type)


def to_repeng(vector: ControlVectorFile):
    """The same directions as a repeng `ControlVector` (needs the repeng package)."""
    try:
        from repeng import ControlVector
    except ImportError as err:
        raise MissingPackageError("to_repeng needs repeng: pip install repeng") from err
    return ControlVector(model_type=vector.model_hint,
                         directions={layer: v.detach().cpu().float().numpy() for layer, v in vector.directions.items()})
