"""Harvest: run a HookedModel over packed text and write its activations to a sharded, resumable cache."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from queue import Queue

import torch
from tqdm.auto import tqdm

from mechscope.devices import resolve_dtype
from mechscope.errors import CacheMismatchError, DataError, MechscopeError
from mechscope.data.atomic import atomic_write_json
from mechscope.data.packing import WindowLayout, pack
from mechscope.data.shard_format import read_header, write_safetensors
from mechscope.data.sources import TextSource, text_source
from mechscope.manifest import build_manifest

FORMAT = "mechscope.activation_cache"
# manifest fields that must agree before a harvest may resume into an existing directory
_RESUME_KEYS = ("model", "hooks", "context", "dtype", "corpus", "seed", "shuffle_buffer", "exclude_special",
                "shard", "layout")


@dataclass
class HarvestConfig:
    """Everything that decides which activations land in a cache (all of it goes into the manifest)."""

    hooks: list[str]
    tokens: int = 1_000_000
    context: int = 128
    batch_size: int = 32
    dtype: str = "float32"
    shard_mb: int = 32  # approximate size of each shard file (small shards keep the unhidden last write short)
    exclude_special: bool = True
    seed: int = 0
    shuffle_buffer: int = 1024  # documents
    prepend_bos: bool | None = None  # None: what the tokenizer does
    shard: tuple[int, int] = (0, 1)  # (i, n): this process takes windows i, i+n, i+2n, ...
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.tokens = int(self.tokens)
        i, n = self.shard
        if not 0 <= i < n:
            raise MechscopeError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
        if self.tokens < 1 or self.context < 2 or self.batch_size < 1:
            raise MechscopeError(f"tokens, context and batch_size must be positive (context >= 2); got "
                                 f"{self.tokens}, {self.context}, {self.batch_size}")
        resolve_dtype(self.dtype)


@dataclass
class ActivationBatch:
    """Activations of the kept positions of one batch of windows."""

    windows: torch.Tensor  # [rows, context] token ids
    acts: dict[str, torch.Tensor]  # hook -> [n, d]
    tokens: torch.Tensor  # [n] token id at each kept position
    index: torch.Tensor  # [n, 2] (row within `windows`, position)


def _check_hooks(model, hooks: list[str]) -> None:
    if not hooks:
        raise MechscopeError("harvest needs at least one hook name")
    for name in hooks:
        if model.point(name).kind == "pattern":
            raise MechscopeError(f"{name} is an attention pattern [batch, head, q, k]; harvest caches per-token "
                                 "activations (use attn.hook_z for per-head outputs)")


def windows(model, source: TextSource, cfg: HarvestConfig) -> Iterator[torch.Tensor]:
    """This process's share of the packed context windows, in a deterministic order."""
    layout = WindowLayout.of(model.tokenizer, cfg.prepend_bos)
    stream = pack(model.tokenizer, source, cfg.context, layout, cfg.shuffle_buffer, cfg.seed)
    i, n = cfg.shard
    return islice(stream, i, None, n)


def prefetched(items: Iterator, depth: int = 256) -> Iterator:
    """The same items, produced on a background thread so tokenising overlaps the forward passes."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
            queue.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            queue.put(err)

    threading.Thread(target=produce, daemon=True).start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()


def activation_batches(model, rows: Iterator[torch.Tensor], cfg: HarvestConfig) -> Iterator[ActivationBatch]:
    """Run the model on batches of windows (stopping after the last hook) and keep the wanted positions."""
    special = torch.tensor(sorted(set(model.tokenizer.all_special_ids)), dtype=torch.int64)
    dtype = resolve_dtype(cfg.dtype)
    while True:
        batch = list(islice(rows, cfg.batch_size))
        if not batch:
            return
        ids = torch.stack(batch)
        _, cache = model.run_with_cache(ids, names=cfg.hooks, stop_at_layer="auto")
        keep = ~torch.isin(ids, special) if cfg.exclude_special else torch.ones_like(ids, dtype=torch.bool)
        flat_keep = keep.reshape(-1).to(model.device)
        acts = {name: cache[name].reshape(ids.numel(), -1)[flat_keep].to("cpu", dtype) for name in cfg.hooks}
        yield ActivationBatch(ids, acts, ids[keep], keep.nonzero().to(torch.int32))


def _stats(acts: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Sum vector and sums of norms / squared norms (float64 accumulation over float32 per-row work)."""
    norms = acts.float().norm(dim=-1).double()
    return acts.sum(0, dtype=torch.float64), norms.sum().item(), norms.square().sum().item()


def _write_shard(path: Path, parts: list[ActivationBatch], hooks: list[str]) -> dict:
    """One shard file; returns its manifest entry (size, checksum, per-hook norm sums)."""
    offsets = torch.tensor([0] + [p.windows.shape[0] for p in parts[:-1]]).cumsum(0)
    index = torch.cat([p.index + torch.tensor([int(off), 0], dtype=torch.int32) for p, off in zip(parts, offsets)])
    tensors = {"windows": torch.cat([p.windows for p in parts]).to(torch.int32),
               "tokens": torch.cat([p.tokens for p in parts]).to(torch.int32), "index": index}
    entry = {"file": path.name, "tokens": int(tensors["tokens"].numel()), "rows": int(tensors["windows"].shape[0]),
             "stats": {}}
    for name in hooks:
        acts = torch.cat([p.acts[name] for p in parts])
        total, norm_sum, sq_sum = _stats(acts)
        tensors[f"acts.{name}"] = acts
        tensors[f"sum.{name}"] = total
        entry["stats"][name] = {"norm_sum": norm_sum, "sq_norm_sum": sq_sum}
    entry["sha256"] = write_safetensors(path, tensors)
    return entry


def _manifest(model, source: TextSource, cfg: HarvestConfig, layout: WindowLayout) -> dict:
    return build_manifest(
        FORMAT, model=model, config=cfg, inputs={"corpus": {"name": source.name}},
        hooks={h: {"d": int(torch.tensor(model.hook_shape(h)[2:]).prod())} for h in cfg.hooks},
        context=cfg.context, dtype=cfg.dtype, corpus=source.name, seed=cfg.seed,
        shuffle_buffer=cfg.shuffle_buffer, exclude_special=cfg.exclude_special, shard=list(cfg.shard),
        layout=asdict(layout), tokens_target=cfg.tokens, batch_size=cfg.batch_size,
        shards=[], tokens=0, rows=0, complete=False)


def _resume_point(out: Path, fresh: dict) -> dict:
    """The manifest to continue from: the existing one when it matches the request, else a fresh one."""
    path = out / "manifest.json"
    if not path.exists():
        return fresh
    from mechscope.data.cache import load_manifest

    old = load_manifest(out)
    differ = [k for k in _RESUME_KEYS if _jsonable(old.get(k)) != _jsonable(fresh[k])]
    if differ:
        raise CacheMismatchError(f"{out} already holds a cache made with different {', '.join(differ)} "
                                 f"(e.g. {differ[0]}: {old.get(differ[0])!r} vs requested {fresh[differ[0]]!r}); "
                                 "choose another --out or delete it")
    for shard in old["shards"]:
        read_header(out / shard["file"])  # a missing or truncated shard is named before more work is done
    old["tokens_target"] = fresh["tokens_target"]
    old["complete"] = old["tokens"] >= fresh["tokens_target"]
    return old


def _jsonable(value):
    import json

    return json.loads(json.dumps(value))


def harvest(model, source, hooks: list[str] | str, tokens: int = 1_000_000, out: str | Path = "activations",
            **options) -> Path:
    """Harvest activations at `hooks` for `tokens` positions into a cache directory; resumes if interrupted.

    Options are HarvestConfig fields (context, batch_size, dtype, shard_mb, exclude_special, seed, shard, ...).
    Returns the cache directory (a `part-i-of-n` subdirectory when sharded).
    """
    hooks = [hooks] if isinstance(hooks, str) else list(hooks)
    shard = options.pop("shard", None) or _torchrun_shard()
    cfg = HarvestConfig(hooks=hooks, tokens=tokens, shard=tuple(shard), **options)
    _check_hooks(model, cfg.hooks)
    source = text_source(source)
    i, n = cfg.shard
    out = Path(out) / f"part-{i:03d}-of-{n:03d}" if n > 1 else Path(out)
    if n > 1:
        cfg.tokens = cfg.tokens // n + (1 if i < cfg.tokens % n else 0)
    out.mkdir(parents=True, exist_ok=True)
    layout = WindowLayout.of(model.tokenizer, cfg.prepend_bos)
    manifest = _resume_point(out, _manifest(model, source, cfg, layout))
    if manifest["complete"]:
        return out
    atomic_write_json(out / "manifest.json", manifest)

    width = sum(manifest["hooks"][h]["d"] for h in hooks) * torch.finfo(resolve_dtype(cfg.dtype)).bits // 8
    shard_tokens = max(cfg.context, cfg.shard_mb * 2**20 // width)
    rows = windows(model, source, cfg)
    for _ in islice(rows, manifest["rows"]):  # skip what complete shards already hold
        pass
    rows = prefetched(rows)
    _run(model, rows, cfg, manifest, out, shard_tokens)
    return out


def _run(model, rows, cfg: HarvestConfig, manifest: dict, out: Path, shard_tokens: int) -> None:
    """The harvest loop: forward passes here, shard writes on a background thread (one in flight)."""
    bar = tqdm(total=cfg.tokens, initial=manifest["tokens"], unit="tok", unit_scale=True, desc="harvest",
               disable=None)
    pending: Future | None = None
    parts: list[ActivationBatch] = []
    buffered = 0
    started, done_before = time.perf_counter(), manifest["tokens"]

    def commit(future_parts: list[ActivationBatch], number: int) -> None:
        entry = _write_shard(out / f"shard_{number:05d}.safetensors", future_parts, cfg.hooks)
        manifest["shards"].append(entry)
        manifest["tokens"] += entry["tokens"]
        manifest["rows"] += entry["rows"]
        manifest["complete"] = manifest["tokens"] >= cfg.tokens
        manifest["tokens_per_second"] = round((manifest["tokens"] - done_before) / (time.perf_counter() - started))
        atomic_write_json(out / "manifest.json", manifest)

    with ThreadPoolExecutor(max_workers=1) as writer:
        def submit(batches: list[ActivationBatch]) -> Future:
            if pending is not None:
                pending.result()  # one write in flight; its manifest update lands before the next shard
            return writer.submit(commit, batches, len(manifest["shards"]))

        try:
            have = manifest["tokens"]
            for batch in activation_batches(model, rows, cfg):
                need = cfg.tokens - have - buffered
                if batch.tokens.numel() > need:  # trim the last batch so the cache holds exactly `tokens`
                    batch = _truncate(batch, need)
                parts.append(batch)
                buffered += batch.tokens.numel()
                bar.update(batch.tokens.numel())
                if buffered >= shard_tokens or have + buffered >= cfg.tokens:
                    pending = submit(parts)
                    have, parts, buffered = have + buffered, [], 0
                if have >= cfg.tokens:
                    break
            if parts:  # the source ran dry: keep what there is
                pending = submit(parts)
            if pending is not None:
                pending.result()
        finally:
            bar.close()
    if not manifest["complete"]:
        raise DataError(f"the source ran out after {manifest['tokens']} of {cfg.tokens} tokens; the cache in "
                        f"{out} holds what there was (use a larger source or fewer tokens)")


def _truncate(batch: ActivationBatch, n: int) -> ActivationBatch:
    rows = int(batch.index[n - 1, 0]) + 1 if n > 0 else 0
    return ActivationBatch(batch.windows[:rows], {k: v[:n] for k, v in batch.acts.items()}, batch.tokens[:n],
                           batch.index[:n])


def _torchrun_shard() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


__all__ = ["FORMAT", "ActivationBatch", "HarvestConfig", "activation_batches", "harvest", "windows"]
