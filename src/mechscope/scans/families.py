"""Concept families: a description, label keywords and contrastive prompt sets, from the built-in TOML file and
an optional user file that adds families or replaces fields of built-in ones."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from mechscope.errors import MechscopeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUILTIN = Path(__file__).with_name("families.toml")
FIELDS = {"description": str, "keywords": list, "positive": list, "negative": list}
MIN_PROMPTS = 4  # per side: at least two to fit on and two held out


class FamilyScanError(MechscopeError):
    """A concept-family file or a scan request that cannot be used: bad TOML, a bad key, unknown family."""


@dataclass(frozen=True)
class ConceptFamily:
    """One concept: what it is (description, label keywords) and prompts that do (positive) and do not show it."""

    name: str
    description: str
    keywords: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def split(self, test_fraction: float, seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
        """{"train": (positive, negative), "test": (...)}: on each side, the prompts with the lowest seeded
        sha256 are held out, so a prompt's split depends only on its text, the seed and the set's size."""
        out = {"train": ([], []), "test": ([], [])}
        for side, prompts in enumerate((self.positive, self.negative)):
            ranked = sorted(prompts, key=lambda text: hashlib.sha256(f"{seed}\0{text}".encode()).hexdigest())
            held = min(max(round(test_fraction * len(ranked)), 2), len(ranked) - 2)
            out["test"][side].extend(ranked[:held])
            out["train"][side].extend(ranked[held:])
        return out

    def sha256(self) -> str:
        """Digest of the family's definition (what a scan's manifest records)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def load_families(path: str | Path | None = None, select: tuple[str, ...] | list[str] | None = None
                  ) -> list[ConceptFamily]:
    """The built-in families, with `path`'s `[families.NAME]` tables merged in (a new name adds a family, a
    known one replaces the fields it gives); `select` keeps the named ones, in that order."""
    tables = _tables(BUILTIN)
    if path is not None:
        for name, given in _tables(Path(path)).items():
            tables[name] = {**tables.get(name, {}), **given}
    families = {name: _family(name, table, path) for name, table in tables.items()}
    if select is None:
        return list(families.values())
    unknown = [name for name in select if name not in families]
    if unknown:
        raise FamilyScanError(f"unknown families {unknown}; expected some of {sorted(families)}")
    return [families[name] for name in select]


def _tables(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise FamilyScanError(f"no concept-family file at {path}")
    try:
        parsed = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise FamilyScanError(f"{path} is not valid TOML: {err}") from err
    extra = sorted(set(parsed) - {"families"})
    if extra or not isinstance(parsed.get("families"), dict):
        raise FamilyScanError(f"{path}: expected only [families.NAME] tables, got top-level keys {sorted(parsed)}")
    for name, table in parsed["families"].items():
        if not isinstance(table, dict):
            raise FamilyScanError(f"{path}: families.{name} must be a table, got {type(table).__name__}")
        for key, value in table.items():
            _check(f"families.{name}.{key}", key, value, path)
    return parsed["families"]


def _check(where: str, key: str, value, path: Path) -> None:
    if key not in FIELDS:
        raise FamilyScanError(f"{path}: {where} is not a family key; expected one of {', '.join(FIELDS)}")
    if key == "description":
        if not isinstance(value, str) or not value.strip():
            raise FamilyScanError(f"{path}: {where} must be a non-empty string, got {value!r}")
        return
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise FamilyScanError(f"{path}: {where} must be a list of non-empty strings, got {value!r}")
    if key != "keywords" and len(value) < MIN_PROMPTS:
        raise FamilyScanError(f"{path}: {where} needs at least {MIN_PROMPTS} prompts, got {len(value)}")


def _family(name: str, table: dict, path) -> ConceptFamily:
    missing = [key for key in FIELDS if key not in table]
    if missing:
        raise FamilyScanError(f"{path}: families.{name} is a new family and needs "
                              f"{', '.join(f'families.{name}.{key}' for key in missing)}")
    return ConceptFamily(name, table["description"], tuple(table["keywords"]), tuple(table["positive"]),
                         tuple(table["negative"]))
