"""Atomic file writes and checksums: a reader never sees half a file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mechscope.errors import DataError


@contextmanager
def atomic_file(path: Path) -> Iterator:
    """A binary handle on a temp file beside `path`; on success it is fsynced and renamed over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise DataError(f"disk full while writing {path}; files written before it are intact, free "
                            "space and run again to resume") from err
        raise


def atomic_write_json(path: Path, obj) -> None:
    with atomic_file(path) as handle:
        handle.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
