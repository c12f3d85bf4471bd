"""`pydocs`: English docstrings of the installed Python standard library and packages, offline.

Files are parsed with `ast` (never imported), walked in sorted order so the corpus is the same on
every run of the same environment, deduplicated, and capped in size.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sysconfig
from collections.abc import Iterator
from pathlib import Path

_SKIP_DIRS = {"test", "tests", "testing", "idlelib", "lib2to3", "__pycache__", "site-packages", "dist-packages",
              "ensurepip", "turtledemo", "tkinter"}


def roots() -> list[Path]:
    """The standard library first, then installed packages."""
    paths = sysconfig.get_paths()
    return [Path(paths["stdlib"]), Path(paths["purelib"])]


def _python_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.is_dir() and entry.name not in _SKIP_DIRS and not entry.name.startswith("."):
            yield from _python_files(entry)
        elif entry.suffix == ".py" and entry.is_file():
            yield entry


def _is_english_prose(text: str, min_words: int) -> bool:
    words = text.split()
    if len(words) < min_words:
        return False
    letters = sum(c.isascii() and c.isalpha() for c in text)
    return letters / max(len(text), 1) > 0.6 and text.isascii()


def docstrings(path: Path, min_words: int = 8) -> Iterator[str]:
    """Cleaned module, class and function docstrings of one file, in source order."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError, RecursionError):
        return
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef))]
    for node in sorted(nodes, key=lambda n: getattr(n, "lineno", 0)):
        doc = ast.get_docstring(node, clean=False)
        if doc:
            doc = inspect.cleandoc(doc)
            if _is_english_prose(doc, min_words):
                yield doc


def pydocs(max_chars: int = 50_000_000, min_words: int = 8) -> Iterator[str]:
    """Deduplicated docstrings in a deterministic order, up to `max_chars` characters in all."""
    seen: set[bytes] = set()
    total = 0
    for root in roots():
        for path in _python_files(root):
            for doc in docstrings(path, min_words):
                key = hashlib.blake2b(doc.encode(), digest_size=16).digest()
                if key in seen:
                    continue
                seen.add(key)
                total += len(doc)
                if total > max_chars:
                    return
                yield doc
