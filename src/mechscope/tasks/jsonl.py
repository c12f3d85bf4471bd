"""User-supplied pairs: a JSONL file, one object a line with "clean", "corrupted", "answer" and "wrong".

"answer" and "wrong" are a completion (with its leading space, " Paris") or a list of them (a set);
any other keys are kept as the row's metadata. Lines are split into train and test by a stable hash of
"clean". Errors name the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mechscope.errors import TaskError
from mechscope.tasks.base import TextTask
from mechscope.tasks.batch import PromptPair
from mechscope.tasks.splits import checked_split, split_items

FIELDS = ("clean", "corrupted", "answer", "wrong")


def _completions(value, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise TaskError(f"{where}: field {key!r} must be a non-empty string or a non-empty list of them, "
                        f"got {json.dumps(value)}")
    return tuple(value)


def parse_pair(line: str, where: str) -> PromptPair:
    """One JSONL line as a pair; `where` ("file:line") prefixes every error."""
    try:
        row = json.loads(line)
    except ValueError as err:
        raise TaskError(f"{where}: expected a JSON object, got invalid JSON ({err})") from err
    if not isinstance(row, dict):
        raise TaskError(f"{where}: expected a JSON object with fields {', '.join(FIELDS)}, got {type(row).__name__}")
    missing = [key for key in FIELDS if key not in row]
    if missing:
        raise TaskError(f"{where}: missing field {missing[0]!r}; every line needs {', '.join(FIELDS)}")
    for key in ("clean", "corrupted"):
        if not isinstance(row[key], str) or not row[key]:
            raise TaskError(f"{where}: field {key!r} must be a non-empty string, got {json.dumps(row[key])}")
    meta = {key: value for key, value in row.items() if key not in FIELDS}
    return PromptPair(row["clean"], row["corrupted"], _completions(row["answer"], where, "answer"),
                      _completions(row["wrong"], where, "wrong"), meta)


def read_pairs(path: str | os.PathLike) -> list[PromptPair]:
    """Every pair of a JSONL file (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise TaskError(f"expected a readable JSONL file of pairs, got {path} ({err.strerror})") from err
    pairs = [parse_pair(line, f"{path}:{number}") for number, line in enumerate(lines, 1) if line.strip()]
    if not pairs:
        raise TaskError(f"expected at least one pair in {path}, got an empty file")
    return pairs


@dataclass
class JsonlPairs(TextTask):
    path: str
    test_fraction: float = 0.2

    name = "jsonl"

    @cached_property
    def _pairs(self) -> dict[str, list[PromptPair]]:
        return split_items(read_pairs(self.path), lambda pair: pair.clean, self.test_fraction)

    def pairs(self, tokenizer, n: int = 64, split: str = "test", seed: int = 0) -> list[PromptPair]:
        """Up to `n` of the file's pairs in `split`, in a seeded random order."""
        pairs = self._pairs[checked_split(split)]
        return random.Random(f"jsonl-{split}-{seed}").sample(pairs, min(n, len(pairs)))
