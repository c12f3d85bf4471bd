"""The zoo: each organism trained once per machine and cached, so tests and demos just load it.

Cache entries live in `$MECHSCOPE_CACHE/zoo` (default `~/.cache/mechscope/zoo`), one directory per
`<name>-<size>-<hash of every training setting>`; a file lock makes concurrent callers wait for a
single training run instead of repeating it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from pathlib import Path

from mechscope.cache_dirs import cache_root
from mechscope.errors import OrganismError
from mechscope.toy.organisms import (FINE_TUNED, MANIFEST, ORGANISMS, Organism, open_organism, run_settings,
                                     train_organism)
from mechscope.toy.tasks import CheckResult

ZOO_FORMAT = 2  # bump when training code changes what a cached organism would be


def zoo_dir() -> Path:
    return cache_root() / "zoo"


def organism_path(name: str, size: str = "default", seed: int = 0, progress: bool = True) -> Path:
    """The cached directory of organism `name`, training it first if no finished copy exists."""
    settings = run_settings(name, size, seed=seed)
    digest = hashlib.sha256(json.dumps({"format": ZOO_FORMAT, **settings}, sort_keys=True).encode()).hexdigest()
    path = zoo_dir() / f"{name}-{size}-{digest[:12]}"
    if (path / MANIFEST).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be training this very organism
        if not (path / MANIFEST).exists():
            train_organism(name, path, seed=seed, size=size, progress=progress)
    return path


def load_organism(name: str, size: str = "default", seed: int = 0, device: str = "auto") -> Organism:
    """Organism `name` from the cache (trained on first use): model, task and manifest."""
    path = organism_path(name, size, seed)
    try:
        return open_organism(path, device=device)
    except OrganismError as err:
        raise OrganismError(f"{err}. The zoo cache entry is damaged: remove {path} and it will be retrained") from err


def check_zoo(size: str = "default", device: str = "auto") -> dict[str, CheckResult]:
    """Every organism of that size from the cache (each trained on first use), with its behavioural check run now."""
    names = [*ORGANISMS, *(name for name, spec in FINE_TUNED.items() if size in spec.sizes)]
    return {name: load_organism(name, size, device=device).check() for name in names}


def cached_organisms() -> dict[str, list[Path]]:
    """Finished cache entries per organism name."""
    specs = {**ORGANISMS, **FINE_TUNED}
    return {name: sorted(p.parent for p in zoo_dir().glob(f"{name}-*/{MANIFEST}")  # "refusal-*" globs "refusal-smollm2-*"
                         if re.fullmatch(f"{re.escape(name)}-({'|'.join(spec.sizes)})-[0-9a-f]{{12}}", p.parent.name))
            for name, spec in specs.items()}
