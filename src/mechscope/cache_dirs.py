"""The per-machine cache (`$MECHSCOPE_CACHE`, default ~/.cache/mechscope) and building an entry in it once.

An entry is a directory that appears by one rename once it is complete; a file lock makes concurrent
first callers wait for a single build; a half-written build left by a killed process is removed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("MECHSCOPE_CACHE", "~/.cache/mechscope")).expanduser()


def build_once(path: Path, build: Callable[[Path], None], marker: str) -> Path:
    """`path`, first built by `build(temp_dir)` unless it holds `marker` (the file a build writes last).

    Only `path`, its lock file and its own temp directories (`.NAME.partial-*`) are ever touched.
    """
    if (path / marker).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building this very entry
        if (path / marker).exists():
            return path
        for stale in path.parent.glob(f".{path.name}.partial-*"):  # a killed build: nobody holds the lock
            shutil.rmtree(stale, ignore_errors=True)
        if path.exists():  # no marker: an incomplete entry written by something else than build_once
            shutil.rmtree(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
        try:
            build(tmp)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path
