"""The one manifest writer: every artefact directory's manifest.json starts with the same provenance keys.

Shared keys: format and format_version, mechscope_version, versions (mechscope, torch, transformers, tokenizers,
python),
created (UTC), model (`HookedModel.describe()`: name, fingerprint, revision, quantisation), config, inputs
(each with a sha256). The artefact's own keys follow; readers of older manifests find only those.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path

from mechscope.data.atomic import atomic_write_json, sha256_file
from mechscope.version import __version__

MANIFEST_FILE = "manifest.json"


def library_versions() -> dict:
    """Versions of mechscope and the libraries whose numerics an artefact depends on."""
    import tokenizers
    import torch
    import transformers

    return {"mechscope": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "python": platform.python_version()}


def input_record(path: str | Path) -> dict:
    """An input artefact and its sha256: a file's own; a directory's from its manifest.json when it has one
    (manifests record their files' checksums or what made them), else from every file below it."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "sha256": sha256_file(path)}
    if (path / MANIFEST_FILE).is_file():
        return {"path": str(path), "sha256": sha256_file(path / MANIFEST_FILE)}
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{sha256_file(file)}\n".encode())
    return {"path": str(path), "sha256": digest.hexdigest()}


def file_checksums(directory: str | Path, names: list[str]) -> dict[str, str]:
    """sha256 of each named file in `directory` (what a manifest records about the files beside it)."""
    return {name: sha256_file(Path(directory) / name) for name in names}


def _plain(config) -> dict | None:
    if config is None or isinstance(config, dict):
        return config
    return config.to_dict() if hasattr(config, "to_dict") else asdict(config) if is_dataclass(config) else dict(config)


def build_manifest(kind: str, model=None, config=None, inputs: dict | None = None, format_version: int = 1,
                   **fields) -> dict:
    """A manifest of artefact `kind` (e.g. "mechscope.dictionary"): the shared keys, then `fields`.

    `model` is a HookedModel (described) or an already-described dict; `config` a dataclass or dict;
    `inputs` maps a role to an `input_record` (or a list of them, or a plain name).
    """
    manifest = {"format": kind, "format_version": format_version, "mechscope_version": __version__,
                "versions": library_versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "model": model.describe() if hasattr(model, "describe") else model,
                "config": _plain(config), "inputs": inputs or {}}
    return json.loads(json.dumps({**manifest, **fields}, default=str))


def write_manifest(directory: str | Path, manifest: dict) -> Path:
    """Write `manifest` atomically as directory/manifest.json."""
    path = Path(directory) / MANIFEST_FILE
    atomic_write_json(path, manifest)
    return path
