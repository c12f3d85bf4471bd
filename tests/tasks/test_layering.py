"""tasks/ sits below toy/ and the analysis stages: it imports only the ground floor (models/, data/) and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import mechscope.tasks

ALLOWED = ("mechscope.tasks", "mechscope.errors", "mechscope.models", "mechscope.data")


def test_tasks_import_nothing_above_the_ground_floor():
    imported = set()
    for path in Path(mechscope.tasks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                imported |= {(path.name, alias.name) for alias in node.names}
    mechscope_imports = {(name, module) for name, module in imported if module.startswith("mechscope")}
    assert mechscope_imports and all(module.startswith(ALLOWED) for _, module in mechscope_imports), sorted(
        (name, module) for name, module in mechscope_imports if not module.startswith(ALLOWED))
