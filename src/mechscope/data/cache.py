"""ActivationCache: memory-mapped random access and a seeded, resumable, globally shuffled batch iterator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mechscope.errors import CacheMismatchError, CorruptShardError, DataError
from mechscope.data.atomic import sha256_file
from mechscope.data.permutation import permute
from mechscope.data.shard_format import ShardReader

# fields that differ between parts of one sharded harvest; everything else must agree to open them as one
_PART_FIELDS = {"shard", "shards", "tokens", "rows", "tokens_target", "complete", "tokens_per_second",
                "config", "created"}  # config holds the shard and its token share; each part has its own time


def load_manifest(directory: Path) -> dict:
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{directory} is not an activation cache (no manifest.json)") from err
    except json.JSONDecodeError as err:
        raise CorruptShardError(f"{path} is not valid JSON: {err.msg}") from err
    if manifest.get("format") != "mechscope.activation_cache":
        raise DataError(f"{path} is not an activation-cache manifest (format={manifest.get('format')!r})")
    return manifest


def _part_dirs(path: Path) -> list[Path]:
    """A cache directory, or the part-i-of-n directories of a sharded harvest below it."""
    if (path / "manifest.json").exists():
        return [path]
    parts = sorted(p for p in path.glob("part-*-of-*") if (p / "manifest.json").exists())
    if not parts:
        raise DataError(f"{path} holds no activation cache (no manifest.json and no part-*-of-* directories)")
    return parts


@dataclass
class _Shard:
    reader: ShardReader
    start: int  # global index of its first row
    tokens: int
    entry: dict


class ActivationCache:
    """One or more harvested cache directories opened as a single table of activations."""

    def __init__(self, path: str | Path | list[str | Path]):
        dirs = [d for p in ([path] if isinstance(path, (str, Path)) else path) for d in _part_dirs(Path(p))]
        self.manifests = [load_manifest(d) for d in dirs]
        self.manifest = self.manifests[0]
        for directory, other in zip(dirs[1:], self.manifests[1:]):
            differ = sorted(k for k in set(self.manifest) | set(other) if k not in _PART_FIELDS
                            and self.manifest.get(k) != other.get(k))
            if differ:
                raise CacheMismatchError(f"{directory} cannot be opened with {dirs[0]}: they differ in {differ}")
        self.directories = dirs
        self._shards: list[_Shard] = []
        start = 0
        for directory, manifest in zip(dirs, self.manifests):
            for entry in manifest["shards"]:
                self._shards.append(_Shard(ShardReader(directory / entry["file"]), start, entry["tokens"], entry))
                start += entry["tokens"]
        self._starts = np.array([s.start for s in self._shards], dtype=np.int64)
        self._len = start

    # ----- description ------------------------------------------------------------------------
    @property
    def hooks(self) -> list[str]:
        return list(self.manifest["hooks"])

    def d(self, hook: str) -> int:
        self._check_hook(hook)
        return self.manifest["hooks"][hook]["d"]

    def __len__(self) -> int:
        return self._len

    @property
    def complete(self) -> bool:
        return all(m["complete"] for m in self.manifests)

    def stats(self, hook: str) -> dict:
        """Mean vector, mean norm and mean squared norm over every cached token (used for normalisation)."""
        self._check_hook(hook)
        total = sum(torch.from_numpy(np.array(s.reader.array(f"sum.{hook}"))) for s in self._shards)
        norm = sum(s.entry["stats"][hook]["norm_sum"] for s in self._shards)
        sq = sum(s.entry["stats"][hook]["sq_norm_sum"] for s in self._shards)
        n = max(self._len, 1)
        return {"count": self._len, "mean": (total / n).float(), "mean_norm": norm / n, "mean_sq_norm": sq / n}

    def info(self) -> dict:
        m = self.manifest
        return {"directories": [str(d) for d in self.directories], "tokens": len(self), "complete": self.complete,
                "shards": len(self._shards), "hooks": {h: self.d(h) for h in self.hooks}, "dtype": m["dtype"],
                "context": m["context"], "corpus": m["corpus"], "model": m["model"]["name"],
                "model_fingerprint": m["model"]["fingerprint"],
                "mean_norm": {h: round(self.stats(h)["mean_norm"], 4) for h in self.hooks},
                "bytes": sum(s.reader.path.stat().st_size for s in self._shards)}

    def verify(self) -> None:
        """Check every shard against its manifest checksum; a corrupt or missing one is named."""
        for shard in self._shards:
            if not shard.reader.path.exists():
                raise CorruptShardError(f"shard {shard.reader.path} is missing")
            if sha256_file(shard.reader.path) != shard.entry["sha256"]:
                raise CorruptShardError(f"shard {shard.reader.path} does not match its checksum in the manifest")

    # ----- random access ----------------------------------------------------------------------
    def get(self, hook: str, index) -> torch.Tensor:
        """Activations [len(index), d] at global token indices, in the order given."""
        self._check_hook(hook)
        return self._gather(f"acts.{hook}", self._as_index(index))

    def token_ids(self, index) -> torch.Tensor:
        return self._gather("tokens", self._as_index(index)).long()

    def context(self, index: int) -> tuple[torch.Tensor, int]:
        """(the whole window of token ids the token came from, its position in that window)."""
        shard = self._shards[int(np.searchsorted(self._starts, index, side="right")) - 1]
        row, pos = shard.reader.array("index")[index - shard.start]
        return torch.from_numpy(np.array(shard.reader.array("windows")[row])).long(), int(pos)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        return {hook: self.get(hook, index) for hook in self.hooks}

    def in_order(self, hook: str, windows: int = 32) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """Whole windows in stored order, `windows` at a time: (activations [n, d], (window, position) [n, 2],
        the windows' token ids [w, context], number of the first window); windows are numbered across shards."""
        self._check_hook(hook)
        offset = 0
        for shard in self._shards:
            table = shard.reader.array("windows")
            index = np.asarray(shard.reader.array("index"))
            for first in range(0, len(table), windows):
                a, b = np.searchsorted(index[:, 0], [first, first + windows])
                rows = np.arange(a, b)
                where = torch.from_numpy(index[a:b].astype(np.int64)) + torch.tensor([offset, 0])
                yield (shard.reader.rows(f"acts.{hook}", rows), where,
                       torch.from_numpy(np.array(table[first:first + windows])).long(), offset + first)
            offset += len(table)

    def _as_index(self, index) -> np.ndarray:
        if isinstance(index, slice):
            index = np.arange(*index.indices(self._len))
        array = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if array.size and (array.min() < 0 or array.max() >= self._len):
            raise IndexError(f"token index out of range for a cache of {self._len} tokens")
        return array

    def _gather(self, name: str, index: np.ndarray) -> torch.Tensor:
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        owner = np.searchsorted(self._starts, sorted_index, side="right") - 1
        pieces = []
        for shard_id in np.unique(owner):
            shard = self._shards[shard_id]
            pieces.append(shard.reader.rows(name, sorted_index[owner == shard_id] - shard.start))
        out = torch.cat(pieces) if pieces else torch.empty(0)
        unsort = torch.from_numpy(np.argsort(order, kind="stable"))
        return out[unsort]

    def _check_hook(self, hook: str) -> None:
        if hook not in self.manifest["hooks"]:
            raise DataError(f"this cache holds hooks {self.hooks}, not {hook!r}")

    # ----- training stream --------------------------------------------------------------------
    def batches(self, batch_size: int, hooks: str | list[str] | None = None, seed: int = 0, start: int = 0,
                epochs: int | None = 1, dtype: torch.dtype | None = None,
                device: str | torch.device = "cpu") -> Iterator:
        """Globally shuffled batches (a tensor for one hook, a dict for several), resumable from batch `start`.

        Batch b of epoch e is fixed by (seed, e, b) alone, so skipping `start` batches costs nothing and
        a resumed run sees exactly the batches an uninterrupted one would have. epochs=None repeats forever.
        """
        names = [hooks] if isinstance(hooks, str) else list(hooks or self.hooks)
        for hook in names:
            self._check_hook(hook)
        per_epoch = self._len // batch_size
        if per_epoch == 0:
            raise DataError(f"batch_size {batch_size} exceeds the cache's {self._len} tokens")
        b = start
        while epochs is None or b < per_epoch * epochs:
            epoch, within = divmod(b, per_epoch)
            ids = torch.arange(within * batch_size, (within + 1) * batch_size)
            index = permute(ids, self._len, seed * 1_000_003 + epoch).numpy()
            out = {h: self.get(h, index).to(device=device, dtype=dtype or None) for h in names}
            yield out[names[0]] if isinstance(hooks, str) or len(names) == 1 else out
            b += 1
