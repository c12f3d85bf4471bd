"""The C++ fused TopK extension: built once per (torch version, source) into the mechscope cache, loaded lazily.

Nothing here runs at import: without a compiler `extension()` raises, `kernels.fused` then takes the plain
PyTorch path, and mechscope imports either way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from functools import cache
from pathlib import Path

import torch

from mechscope.cache_dirs import build_once, cache_root

SOURCE = Path(__file__).with_name("fused_topk.cpp")
NAME = "mechscope_fused_topk"


FLAGS = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for in the extension runs on torch's threads


def build_directory() -> Path:
    """The cache entry of this torch version, Python version, kernel source and compiler flags."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / "kernels" / f"{NAME}-torch{torch.__version__}-{python}-{digest}"


def library_file(directory: Path) -> Path:
    return directory / f"{NAME}.so"


def build() -> Path:
    """Compile the extension into the cache (a no-op when this version is there already); returns its .so."""
    from torch.utils import cpp_extension

    def compile_into(tmp: Path) -> None:
        cpp_extension.load(NAME, [str(SOURCE)], build_directory=str(tmp), extra_cflags=FLAGS,
                           extra_ldflags=["-fopenmp"], verbose=False)

    return library_file(build_once(build_directory(), compile_into, library_file(Path()).name))


@cache
def extension():
    """The loaded extension module, or raises: OSError / RuntimeError / ImportError from building or loading."""
    path = build()
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
