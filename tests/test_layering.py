"""Layering, enforced by reading every import (function-level ones included) in the package's source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mechscope

ROOT = Path(mechscope.__file__).parent
# single modules that only the ground floor sits under
LOW = {"errors", "devices", "hub", "version", "manifest", "cache_dirs", "statistics", "heap"}
GROUND = {"models", "data"}
ALLOWED = {  # package (or low module) -> the mechscope packages and modules it may import
    **{name: GROUND | LOW for name in GROUND | LOW},
    "synthetic": GROUND | LOW | {"synthetic"},
    "dictionaries": GROUND | LOW | {"synthetic", "dictionaries"},
    "tasks": GROUND | LOW | {"tasks"},
    "circuits": GROUND | LOW | {"tasks", "dictionaries", "circuits"},
    "steering": GROUND | LOW | {"tasks", "dictionaries", "steering"},
    "server": GROUND | LOW | {"dictionaries", "features", "steering", "server"},
}


def imported(path: Path) -> set[str]:
    """The first component below `mechscope` of every mechscope import in a file ("" for `mechscope` itself)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module + "." + alias.name if node.module == "mechscope" else node.module
                       for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "mechscope":
                names.add(parts[1] if len(parts) > 1 else "")
    return names


def owner(path: Path) -> str:
    part = path.relative_to(ROOT).parts[0]
    return part.removesuffix(".py")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(layer):
    files = [p for p in ROOT.rglob("*.py") if owner(p) == layer]
    assert files, f"no source files for {layer}"
    bad = {f"{p.relative_to(ROOT)} imports mechscope.{name}" for p in files for name in imported(p) - ALLOWED[layer]}
    assert not bad, sorted(bad)


def test_the_scan_sees_function_level_and_root_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from mechscope import __version__\n    import mechscope.toy.zoo\n"
                      "from mechscope.data.atomic import sha256_file\n")
    assert imported(source) == {"__version__", "toy", "data"}
