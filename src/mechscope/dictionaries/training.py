"""One training loop for every variant; several dictionaries train from one pass over the data."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from mechscope.devices import resolve_device
from mechscope.dictionaries import distributed
from mechscope.dictionaries.batches import BatchSource, as_batch_source
from mechscope.dictionaries.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats import saelens
from mechscope.dictionaries.geometric_median import geometric_median
from mechscope.dictionaries.latent_shards import DictionaryShard, ShardLayout, check_shardable, needs_spawn, spawn
from mechscope.dictionaries.run_log import RunLog
from mechscope.dictionaries.variants import StepContext, make_variant
from mechscope.errors import MechscopeError
from mechscope.heap import reused_heap
from mechscope.manifest import build_manifest, file_checksums, input_record, write_manifest


class TrainingError(MechscopeError):
    """Training stopped on bad data or a diverging loss; the last checkpoint is intact."""


@dataclass
class TrainConfig:
    """Every knob of a training run, with defaults that work for the common case."""

    tokens: int = 2_000_000
    batch_size: int = 4096
    lr: float | None = None  # None: 2e-4 * sqrt(2^14 / d_sae) (Gao et al.'s width scaling)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_warmup_steps: int = 100
    lr_decay_fraction: float = 0.2  # linear decay to 0 over the last 20% of steps
    sparsity_warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    normalize_activations: bool = True  # scale inputs so E||x|| = sqrt(d_in); folded into weights on save
    b_dec_init: str = "geometric_median"  # | "mean" | "zeros"
    init_tokens: int = 16_384
    dead_after_tokens: int | None = None  # None: min(10M, tokens / 10)
    resample_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # variants that resample
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    latent_shards: int = 1  # >1: d_sae / latent_shards latents per process (SAEs, transcoders, CLTs; gloo or torchrun)
    wandb_project: str | None = None

    @property
    def steps(self) -> int:
        return max(1, int(self.tokens) // self.batch_size)


class TrainingStep(nn.Module):
    """The module DDP wraps: forward is the variant's training loss."""

    def __init__(self, dictionary: Dictionary):
        super().__init__()
        self.dictionary = dictionary

    def forward(self, x: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        return self.dictionary.variant.loss(self.dictionary, x, ctx)


@dataclass
class _Run:
    name: str
    directory: Path
    dictionary: Dictionary
    optimizer: torch.optim.Optimizer
    step_module: nn.Module
    tokens_since_fired: torch.Tensor  # [d_sae] (this shard's latents when sharded)
    lr: float
    layout: ShardLayout
    start_step: int = 0
    done: bool = False


def run_name(cfg: DictionaryConfig) -> str:
    """The run's directory name, which its variant composes (e.g. topk_4096_k32, relu-classic_512_l1-5)."""
    return make_variant(cfg).run_name()


def lr_at(step: int, cfg: TrainConfig, base: float) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.lr_warmup_steps))
    decay_start = cfg.steps * (1 - cfg.lr_decay_fraction)
    decay = 1.0 if step < decay_start else max(0.0, (cfg.steps - step) / max(1.0, cfg.steps - decay_start))
    return base * warm * decay


def norm_scale(sample: torch.Tensor, cfg: TrainConfig) -> float:
    """The factor that makes E||x|| = sqrt(d) (1 without normalisation)."""
    return math.sqrt(sample.shape[1]) / sample.norm(dim=1).mean().item() if cfg.normalize_activations else 1.0


def _init_statistics(sample: torch.Tensor | tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig) -> dict:
    """Normalisation scales, fixed loss variance and the b_dec initialisation from the first tokens.

    A paired sample (a transcoder's inputs and targets) gets one scale per side; variance and b_dec come
    from the targets, the side that b_dec and the loss live in."""
    inputs, targets = sample if isinstance(sample, tuple) else (sample, None)
    scale = norm_scale(inputs, cfg)
    out_scale = scale if targets is None else norm_scale(targets, cfg)
    scaled = inputs * scale
    scaled_out = scaled if targets is None else targets * out_scale
    variance = (scaled_out - scaled_out.mean(0)).pow(2).sum(1).mean().item()
    init = {"geometric_median": lambda: geometric_median(scaled_out[:8192]), "mean": lambda: scaled_out.mean(0),
            "zeros": lambda: torch.zeros(scaled_out.shape[1])}
    if cfg.b_dec_init not in init:
        raise MechscopeError(f"b_dec_init must be one of {sorted(init)}, got {cfg.b_dec_init!r}")
    return {"scale": scale, "out_scale": out_scale, "variance": variance, "b_dec": init[cfg.b_dec_init](),
            "sample": scaled[:4096], "target": None if targets is None else scaled_out[:4096]}


def _prepare(cfg: DictionaryConfig, src: BatchSource) -> DictionaryConfig:
    if cfg.d_in != src.d_in:
        raise MechscopeError(f"dictionary {run_name(cfg)} has d_in={cfg.d_in} but {src.name} gives "
                             f"activations of d_in={src.d_in}")
    if cfg.is_transcoder and not src.paired:
        raise MechscopeError(f"transcoder {run_name(cfg)} needs (input, target) pairs; {src.name} gives single "
                             "activations (name the output hook: hook_out=... / --out-hook)")
    if src.paired:
        if cfg.d_out not in (None, src.d_out):
            raise MechscopeError(f"transcoder {run_name(cfg)} has d_out={cfg.d_out} but {src.name} gives targets "
                                 f"of width {src.d_out}")
        cfg = replace(cfg, d_out=src.d_out, hook_name_out=cfg.hook_name_out or src.hook_name_out)
    return replace(cfg, hook_name=cfg.hook_name or src.hook_name, model_name=cfg.model_name or src.model_name)


def _make_run(cfg: DictionaryConfig, name: str, out: Path, tcfg: TrainConfig, stats: dict, device,
              layout: ShardLayout) -> _Run:
    d = DictionaryShard(cfg, layout, device=device) if layout.sharded else Dictionary(cfg, device=device)
    d.reset_parameters(seed=tcfg.seed)
    d.variant.init_from_data(d, stats["b_dec"], stats["sample"], stats["target"])
    lr = tcfg.lr or 2e-4 * math.sqrt(2**14 / cfg.d_sae)
    optimizer = adam(d, lr, tcfg.adam_betas)
    module = TrainingStep(d) if layout.sharded else distributed.wrap(TrainingStep(d))
    run = _Run(name, out / name, d, optimizer, module, torch.zeros(d.d_sae, dtype=torch.int64, device=device), lr,
               layout)
    checkpoint = layout.checkpoint_dir(run.directory / "checkpoint")
    if (checkpoint / STATE_FILE).exists():
        state, tensors = load_checkpoint(checkpoint, d, optimizer)
        if state["config"] != cfg.to_dict() or state["train"] != train_dict(tcfg):
            raise MechscopeError(f"{run.directory} holds a checkpoint of a different run; use another --out")
        run.start_step = state["step"]
        run.tokens_since_fired = tensors["tokens_since_fired"]
        d.variant.after_step(d, {"min_value": torch.zeros(())})
    elif (run.directory / saelens.CFG_FILE).exists():
        run.done = True
    return run


def adam(d: Dictionary, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Fused Adam where the build has it (5x faster on CPU for SAE-sized matrices), else foreach Adam."""
    try:
        return torch.optim.Adam(d.parameters(), lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(d.parameters(), lr=lr, betas=betas)


def release_training_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Drop Adam's moments and the gradients when the loop ends: 3x the parameters that saving needs none of (a
    sharded run's rank 0 holds its shard and the gathered full dictionary then)."""
    optimizer.state.clear()
    module.zero_grad(set_to_none=True)


def train_dict(tcfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(tcfg)))


def train(source, dictionaries: DictionaryConfig | list[DictionaryConfig], out: str | Path,
          config: TrainConfig | None = None, hook: str | None = None, hook_out: str | None = None) -> list[Path]:
    """Train one or more dictionaries from one pass over `source`; resumes from checkpoints in `out`.

    `source`: an ActivationCache or its directory, SyntheticFeatures, or an iterator of [n, d_in]
    tensors (e.g. `stream_batches`; not resumable). Transcoders train from (hook, hook_out) pairs of a
    cache, or an iterator of (x, y) pairs. Returns the SAELens-layout directories written.
    """
    tcfg = config or TrainConfig()
    cfgs = [dictionaries] if isinstance(dictionaries, DictionaryConfig) else list(dictionaries)
    for cfg in cfgs if tcfg.latent_shards > 1 else ():
        check_shardable(cfg, tcfg.latent_shards)
    src = as_batch_source(source, hook, tcfg.seed, hook_out)
    cfgs = [_prepare(c, src) for c in cfgs]
    names = [run_name(c) for c in cfgs]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    out = Path(out)
    if needs_spawn(tcfg.latent_shards):
        spawn(tcfg.latent_shards, train, (source, dictionaries, out, tcfg, hook, hook_out))
        return [out / n for n in names]
    rank, world = distributed.setup(tcfg.device)
    device = resolve_device(tcfg.device) if world == 1 else distributed.device(tcfg.device)
    layout = ShardLayout.create(tcfg.latent_shards, rank, world)
    if tcfg.batch_size % layout.replicas:
        raise MechscopeError(f"batch_size {tcfg.batch_size} must divide evenly over {layout.replicas} data replicas")

    batches = src.batches(tcfg.batch_size, 0)
    if src.resumable:
        sample = src.sample(tcfg.init_tokens, tcfg.batch_size)
    else:
        first = next(batches)
        sample = tuple(t.float() for t in first) if src.paired else first.float()
        batches = chain([first], batches)
    stats = _init_statistics(sample, tcfg)
    runs = [_make_run(c, n, out, tcfg, stats, device, layout) for c, n in zip(cfgs, names)]
    active = [r for r in runs if not r.done]
    if active:
        start = min(r.start_step for r in active)
        if start and src.resumable:
            batches = src.batches(tcfg.batch_size, start)
        with reused_heap(wanted=not layout.sharded):  # sharding is for memory: no heap slack there
            _loop(active, batches, start, tcfg, stats, rank, layout, device, src)
    for run in active:
        release_training_state(run.dictionary, run.optimizer)
        run.dictionary = layout.gather(run.dictionary)
        if rank == 0:
            _finish(run, stats, tcfg, src)
    distributed.barrier()
    return [r.directory for r in runs]


def _loop(runs: list[_Run], batches, start: int, tcfg: TrainConfig, stats: dict, rank: int, layout: ShardLayout,
          device, src: BatchSource) -> None:
    dead_after = tcfg.dead_after_tokens or max(tcfg.batch_size, min(10_000_000, tcfg.steps * tcfg.batch_size // 10))
    resample_steps = {int(f * tcfg.steps) for f in tcfg.resample_fractions}
    local = layout.rows(tcfg.batch_size)
    logs = {r.name: RunLog(r.directory, r.start_step, tcfg.wandb_project, r.name,
                           {"dictionary": r.dictionary.variant.cfg.to_dict(), "train": train_dict(tcfg)})
            if rank == 0 else None
            for r in runs}
    started = time.perf_counter()
    bar = tqdm(range(start, tcfg.steps), desc="train", unit="step", disable=None if rank == 0 else True)
    try:
        for step in bar:
            batch = next(batches, None)
            if batch is None:
                raise TrainingError(f"{src.name} ran out at step {step} of {tcfg.steps}")
            x, y = _scaled(batch, stats, device)
            if not bool(torch.isfinite(x).all()) or (y is not None and not bool(torch.isfinite(y).all())):
                raise TrainingError(f"step {step}: batch {step} from {src.name} holds NaN or Inf activations; "
                                    "the last checkpoint is intact")
            for run in runs:
                if step < run.start_step:
                    continue
                terms = _step(run, x[local], None if y is None else y[local], step, tcfg, stats, dead_after,
                              resample_steps)
                if step % tcfg.log_every == 0 or step == tcfg.steps - 1:
                    _log(logs[run.name], run, step, terms, tcfg, dead_after, started)
                if layout.replica == 0 and (step + 1) % tcfg.checkpoint_every == 0 and step + 1 < tcfg.steps:
                    _checkpoint(run, step + 1, tcfg)
    finally:
        bar.close()
        for log in logs.values():
            if log is not None:
                log.close()


def _scaled(batch, stats: dict, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, targets or None) of one batch, on the device and in the training scale."""
    if isinstance(batch, tuple):
        return (batch[0].to(device, torch.float32) * stats["scale"],
                batch[1].to(device, torch.float32) * stats["out_scale"])
    return batch.to(device, torch.float32) * stats["scale"], None


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor | None, step: int, tcfg: TrainConfig, stats: dict,
          dead_after: int, resample_steps: set[int]) -> dict:
    d = run.dictionary
    lr = lr_at(step, tcfg, run.lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    warm = tcfg.sparsity_warmup_fraction * tcfg.steps
    dead = run.tokens_since_fired >= dead_after
    ctx = StepContext(stats["variance"], min(1.0, (step + 1) / warm) if warm >= 1 else 1.0, dead, y)
    terms = run.step_module(x, ctx)
    if not bool(torch.isfinite(terms["total"])):
        raise TrainingError(f"step {step}: {run.name}'s loss is {terms['total'].item()}; the last checkpoint "
                            "is intact (lower the learning rate or check the data)")
    run.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    run.layout.average_gradients(d)
    if d.variant.unit_norm_decoder:
        d.remove_parallel_gradient()
    run.layout.clip_grad_norm_(d, tcfg.grad_clip)
    run.optimizer.step()
    if d.variant.unit_norm_decoder:
        d.normalize_decoder()
    if "min_value" in terms:
        terms["min_value"] = distributed.all_reduce_min(terms["min_value"])
    d.variant.after_step(d, terms)
    fired = run.layout.any_fired(terms["fired"])
    run.tokens_since_fired += tcfg.batch_size
    run.tokens_since_fired[fired] = 0
    if step in resample_steps and d.variant.resample(d, run.optimizer, x, run.tokens_since_fired >= dead_after, step):
        run.tokens_since_fired[run.tokens_since_fired >= dead_after] = 0
    return terms


def _log(log: RunLog | None, run: _Run, step: int, terms: dict, tcfg: TrainConfig, dead_after: int,
         started: float) -> None:
    """One log line on rank 0; every rank takes part in counting the dead latents over all latent shards."""
    d = run.dictionary
    dead = int(d.latent_sum((run.tokens_since_fired >= dead_after).sum()))
    if log is None:
        return
    log.write({"step": step, "tokens": (step + 1) * tcfg.batch_size, "lr": run.optimizer.param_groups[0]["lr"],
               **{k: round(float(terms[k].detach()), 6) for k in ("total", "recon", "aux", "sparsity", "l0", "fvu")},
               "dead_fraction": round(dead / d.cfg.d_sae, 6),
               "elapsed_s": round(time.perf_counter() - started, 2)})


def _checkpoint(run: _Run, step: int, tcfg: TrainConfig) -> None:
    save_checkpoint(run.layout.checkpoint_dir(run.directory / "checkpoint"), run.dictionary, run.optimizer,
                    {"step": step, "config": run.dictionary.variant.cfg.to_dict(), "train": train_dict(tcfg)},
                    {"tokens_since_fired": run.tokens_since_fired})


def _finish(run: _Run, stats: dict, tcfg: TrainConfig, src: BatchSource) -> None:
    """Fold the normalisation into the weights and write the SAELens-layout files and a manifest."""
    d = run.dictionary
    d.fold_activation_scale(stats["scale"], stats["out_scale"])
    saelens.save(d, run.directory)
    log = [json.loads(line) for line in (run.directory / "training_log.jsonl").read_text().splitlines()]
    provenance = src.provenance or {}
    inputs = {"activations": [input_record(p) for p in provenance.get("cache", [])] or {"name": src.name}}
    write_manifest(run.directory, build_manifest(
        "mechscope.dictionary", model=provenance.get("model"), config=d.cfg, inputs=inputs, name=run.name,
        train=train_dict(tcfg), source=src.name, provenance=provenance, activation_scale=stats["scale"],
        output_scale=stats["out_scale"],
        final=log[-1] if log else None, files=file_checksums(run.directory, [saelens.CFG_FILE, saelens.WEIGHTS_FILE])))
    shutil.rmtree(run.directory / "checkpoint", ignore_errors=True)
