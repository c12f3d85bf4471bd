"""Training a cross-layer transcoder: a thin loop over the shared trainer's pieces (TrainConfig, learning-rate
schedule, Adam, normalisation, checkpoints, run log), fed every layer's MLP input and output at once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.devices import resolve_device
from mechscope.dictionaries import distributed
from mechscope.dictionaries.batches import rebatch
from mechscope.dictionaries.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder
from mechscope.dictionaries.clt_shards import CLTShard, check_clt_shardable
from mechscope.dictionaries.formats.circuit_tracer import CONFIG_FILE
from mechscope.dictionaries.latent_shards import ShardLayout, needs_spawn, spawn
from mechscope.dictionaries.run_log import RunLog
from mechscope.dictionaries.training import (TrainConfig, TrainingError, adam, lr_at, norm_scale,
                                             release_training_state, train_dict)
from mechscope.errors import DataError, MechscopeError
from mechscope.heap import reused_heap
from mechscope.manifest import build_manifest, input_record, write_manifest


def clt_batches(source, cfg: CLTConfig, seed: int = 0):
    """(make(batch_size, start) -> iterator of (xs [b, n_layers, d_in], ys [b, n_layers, d_out]), resumable,
    provenance) from an ActivationCache holding every input and output hook, or an iterator of such pairs."""
    from mechscope.data import ActivationCache

    ins, outs = cfg.input_hooks, cfg.output_hooks
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        source = ActivationCache(source)
    if isinstance(source, ActivationCache):
        cache = source
        missing = [h for h in ins + outs if h not in cache.hooks]
        if missing:
            raise DataError(f"the cache lacks hooks {missing} that a {cfg.n_layers}-layer CLT reads or predicts")

        def make(b: int, s: int):
            for batch in cache.batches(b, ins + outs, seed=seed, start=s, epochs=None, dtype=torch.float32):
                yield torch.stack([batch[h] for h in ins], 1), torch.stack([batch[h] for h in outs], 1)
        return make, True, {"cache": [str(d) for d in cache.directories], "tokens": len(cache),
                            "model": cache.manifest["model"], "corpus": cache.manifest["corpus"]}
    iterator = iter(source)

    def stream(b: int, s: int):
        if s:
            raise DataError("a live stream cannot resume from a checkpoint; train from an ActivationCache")
        yield from rebatch(iterator, b)
    return stream, False, {"name": "stream"}


def _scales(acts: torch.Tensor, tcfg: TrainConfig) -> torch.Tensor:
    """Per-layer normalisation factors [n_layers] for acts [n, n_layers, d]."""
    return torch.tensor([norm_scale(acts[:, layer], tcfg) for layer in range(acts.shape[1])])


def train_clt(source, cfg: CLTConfig, out: str | Path, config: TrainConfig | None = None) -> Path:
    """Train a cross-layer transcoder; resumes from a checkpoint in out/<run name>. Returns its directory
    (circuit-tracer's CLT layout, scales folded into the weights)."""
    tcfg = config or TrainConfig()
    shards = tcfg.latent_shards
    if shards > 1:
        check_clt_shardable(cfg, shards)
    directory = Path(out) / cfg.run_name()
    if (directory / CONFIG_FILE).exists() and not (directory / "checkpoint").exists():
        return directory
    if needs_spawn(shards):
        spawn(shards, train_clt, (source, cfg, out, tcfg))
        return directory
    rank, world = distributed.setup(tcfg.device) if shards > 1 else (0, 1)
    if shards > 1:
        check_clt_shardable(cfg, shards, world)
    device = distributed.device(tcfg.device) if shards > 1 else resolve_device(tcfg.device)
    layout = ShardLayout.create(shards, rank, world)
    make, resumable, provenance = clt_batches(source, cfg, tcfg.seed)
    batches = make(tcfg.batch_size, 0)
    first = [next(batches) for _ in range(max(1, -(-tcfg.init_tokens // tcfg.batch_size)))]
    in_scales, out_scales, variance, b_dec = _statistics(first, cfg, tcfg, device)

    clt = CLTShard(cfg, layout, device) if layout.sharded else CrossLayerTranscoder(cfg, device)
    clt.reset_parameters(tcfg.seed)
    with torch.no_grad():
        clt.b_dec.copy_(b_dec)
    lr = tcfg.lr or 2e-4 * (2**14 / cfg.d_latent) ** 0.5
    optimizer = adam(clt, lr, tcfg.adam_betas)
    start = 0
    checkpoint = layout.checkpoint_dir(directory / "checkpoint")
    if (checkpoint / STATE_FILE).exists():
        state, _ = load_checkpoint(checkpoint, clt, optimizer)
        if state["config"] != cfg.to_dict() or state["train"] != train_dict(tcfg):
            raise MechscopeError(f"{directory} holds a checkpoint of a different run; use another out directory")
        start = state["step"]
    batches = make(tcfg.batch_size, start) if resumable else _chain(first, batches)
    del first  # a stream's chain holds them until it yields them
    with reused_heap(wanted=not layout.sharded):  # sharding is for memory: no heap slack there
        _loop(clt, optimizer, batches, start, lr, in_scales, out_scales, variance, tcfg, directory, layout, rank)
    release_training_state(clt, optimizer)
    clt = layout.gather(clt)
    if rank == 0:
        clt.fold_scales(in_scales, out_scales)
        clt.save(directory)
        write_manifest(directory, build_manifest(
            "mechscope.clt", model=provenance.get("model"), config=cfg, name=cfg.run_name(), train=train_dict(tcfg),
            inputs={"activations": [input_record(p) for p in provenance.get("cache", [])] or provenance},
            input_scales=in_scales.tolist(), output_scales=out_scales.tolist()))
        shutil.rmtree(directory / "checkpoint", ignore_errors=True)
    distributed.barrier()
    return directory


def _statistics(first: list, cfg: CLTConfig, tcfg: TrainConfig, device) -> tuple[Tensor, Tensor, float, Tensor]:
    """Per-layer input and output scales, the targets' summed variance and b_dec's start (the scaled targets' mean)
    from the first batches."""
    xs, ys = (torch.cat(part).float() for part in zip(*first))
    if xs.shape[1:] != (cfg.n_layers, cfg.d_in) or ys.shape[1:] != (cfg.n_layers, cfg.d_output):
        raise DataError(f"CLT batches have shapes {tuple(xs.shape[1:])} -> {tuple(ys.shape[1:])}; expected "
                        f"({cfg.n_layers}, {cfg.d_in}) -> ({cfg.n_layers}, {cfg.d_output})")
    in_scales, out_scales = _scales(xs, tcfg).to(device), _scales(ys, tcfg).to(device)
    scaled_y = ys.to(device) * out_scales[:, None]
    variance = (scaled_y - scaled_y.mean(0)).pow(2).sum((1, 2)).mean().item()
    return in_scales, out_scales, variance, scaled_y.mean(0)


def _chain(first: list, rest):
    yield from first
    yield from rest


def _loop(clt: CrossLayerTranscoder, optimizer, batches, start: int, lr: float, in_scales, out_scales,
          variance: float, tcfg: TrainConfig, directory: Path, layout: ShardLayout, rank: int) -> None:
    name = clt.cfg.run_name()
    log = RunLog(directory, start, tcfg.wandb_project, name, {"clt": clt.cfg.to_dict(), "train": train_dict(tcfg)}) \
        if rank == 0 else None
    warm = tcfg.sparsity_warmup_fraction * tcfg.steps
    started = time.perf_counter()
    device = clt.W_enc.device
    try:
        for step in tqdm(range(start, tcfg.steps), desc="train clt", unit="step", disable=None if rank == 0 else True):
            batch = next(batches, None)
            if batch is None:
                raise TrainingError(f"the CLT's activations ran out at step {step} of {tcfg.steps}")
            xs = batch[0].to(device, torch.float32) * in_scales[:, None]
            ys = batch[1].to(device, torch.float32) * out_scales[:, None]
            if not (bool(torch.isfinite(xs).all()) and bool(torch.isfinite(ys).all())):
                raise TrainingError(f"step {step}: batch {step} holds NaN or Inf activations; the last checkpoint "
                                    "is intact")
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, tcfg, lr)
            terms = clt.loss(xs, ys, variance, min(1.0, (step + 1) / warm) if warm >= 1 else 1.0)
            if not bool(torch.isfinite(terms["total"])):
                raise TrainingError(f"step {step}: the CLT's loss is {terms['total'].item()}; the last checkpoint "
                                    "is intact (lower the learning rate or check the data)")
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            layout.clip_grad_norm_(clt, tcfg.grad_clip)
            optimizer.step()
            if clt.cfg.activation == "topk":
                clt.normalize_decoder()
            clt.after_step(terms)
            del terms["pre"], terms["chosen"], terms["fired"]  # [tokens, layers, latents]: not held into the next step
            if log is not None and (step % tcfg.log_every == 0 or step == tcfg.steps - 1):
                log.write({"step": step, "tokens": (step + 1) * tcfg.batch_size, "lr": optimizer.param_groups[0]["lr"],
                           **{k: round(float(terms[k].detach()), 6) for k in ("total", "recon", "sparsity", "l0", "fvu")},
                           "fvu_per_layer": [round(float(v), 6) for v in terms["fvu_per_layer"]],
                           "elapsed_s": round(time.perf_counter() - started, 2)})
            if (step + 1) % tcfg.checkpoint_every == 0 and step + 1 < tcfg.steps:
                save_checkpoint(layout.checkpoint_dir(directory / "checkpoint"), clt, optimizer,
                                {"step": step + 1, "config": clt.cfg.to_dict(), "train": train_dict(tcfg)}, {})
    finally:
        if log is not None:
            log.close()
