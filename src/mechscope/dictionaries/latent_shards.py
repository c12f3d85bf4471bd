"""Latent-sharded training (Templeton et al. 2024's scale): each process holds a slice of the latents.

A rank holds W_enc[:, slice], b_enc[slice], W_dec[slice, :] and the variant's per-latent tensors (JumpReLU's
threshold, Gated's r_mag/b_mag, BatchTopK's threshold); b_dec and the input scale are replicated. Variants
reach the other latents through three seams of the dictionary, which a shard fills with collectives:
`latent_sum` (an all_reduce(sum) of each shard's partial x_hat, L1 or L0 term), `row_winners` (TopK: each
rank offers its local top k per row, the (value, global index) candidates are all-gathered and the global top
k chosen identically everywhere) and `batch_winners` (BatchTopK, Matryoshka: the same over the whole batch).
A transcoder's target is its output hook; its offset (b_dec, and x @ W_skip with a skip connection) is added
once to the summed partial predictions, so the replicated b_dec and W_skip see the single-process gradient on
every rank, never once per shard. The step equals the single-process step. World = replicas x shards: ranks
r*S .. r*S+S-1 share one data slice (a latent group); ranks holding the same slice average their gradients (a
replica group).
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from mechscope.dictionaries import distributed
from mechscope.dictionaries.checkpoint import STATE_FILE
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.sparse_codes import SparseCodes
from mechscope.dictionaries.variants import VARIANTS, make_variant
from mechscope.errors import MechscopeError


@dataclass
class ShardLayout:
    """Where this process sits in the replicas x shards grid (shards=1: plain data parallelism)."""

    shards: int = 1
    shard: int = 0
    replicas: int = 1
    replica: int = 0
    latent_group: object = None  # this replica's shards
    replica_group: object = None  # the ranks that hold this shard

    @classmethod
    def create(cls, shards: int, rank: int, world: int) -> "ShardLayout":
        if shards < 1 or world % shards:
            raise MechscopeError(f"latent_shards must be a positive divisor of the {world} processes, got {shards}")
        if shards == 1:
            return cls(replicas=world, replica=rank)
        replicas = world // shards
        latent_groups = [dist.new_group(list(range(r * shards, (r + 1) * shards))) for r in range(replicas)]
        replica_groups = [dist.new_group(list(range(s, world, shards))) for s in range(shards)]
        return cls(shards, rank % shards, replicas, rank // shards, latent_groups[rank // shards],
                   replica_groups[rank % shards])

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    def rows(self, batch_size: int) -> slice:
        """This replica's rows of a global batch."""
        return slice(self.replica * batch_size // self.replicas, (self.replica + 1) * batch_size // self.replicas)

    def checkpoint_dir(self, directory: Path) -> Path:
        """Each shard checkpoints on its own; a checkpoint of another shard count cannot be resumed."""
        written = sorted(p.name for p in directory.glob("shard-*-of-*")) if directory.exists() else []
        mine = f"shard-{self.shard}-of-{self.shards}"
        if (written and not any(n.endswith(f"-of-{self.shards}") for n in written)) or \
                (self.sharded and (directory / STATE_FILE).exists()):
            raise MechscopeError(f"{directory} was written with another latent_shards ({written or 'unsharded'}); "
                                 f"resume with the same latent_shards ({self.shards} given) or use another --out")
        return directory / mine if self.sharded else directory

    # ----- the finished dictionary -----------------------------------------------------------------
    @torch.no_grad()
    def gather(self, part: torch.nn.Module) -> torch.nn.Module | None:
        """The full dictionary (or CLT) on global rank 0 (None on the others); unsharded: `part` itself."""
        if not self.sharded:
            return part
        if self.replica:
            return None
        full = part.unsharded() if self.shard == 0 else None
        state = full.state_dict() if full is not None else {}
        for name, tensor in part.state_dict().items():
            if name not in part.latent_dims:
                if name in state:
                    state[name].copy_(tensor)
                continue
            dim = part.latent_dims[name]
            if tensor.movedim(dim, 0).is_contiguous():  # latents outermost in memory (the full one is laid out
                #                                          alike): rank 0 receives straight into its slices
                into = list(state[name].movedim(dim, 0).chunk(self.shards)) if full is not None else None
                dist.gather(tensor.movedim(dim, 0), into, dst=0, group=self.latent_group)
            else:
                pieces = [torch.empty_like(tensor) for _ in range(self.shards)] if full is not None else None
                dist.gather(tensor.contiguous(), pieces, dst=0, group=self.latent_group)
                if full is not None:
                    state[name].copy_(torch.cat(pieces, dim))
        return full

    # ----- collectives of the training step --------------------------------------------------------
    def merge_top_k(self, values: Tensor, index: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """The k largest along the last dim of every shard's candidates (values, global index), the same on
        every shard: [batch, k] per row, or [k] of a flattened batch."""
        all_values = [torch.empty_like(values) for _ in range(self.shards)]
        all_index = [torch.empty_like(index) for _ in range(self.shards)]
        dist.all_gather(all_values, values.contiguous(), group=self.latent_group)
        dist.all_gather(all_index, index.contiguous(), group=self.latent_group)
        top = torch.cat(all_values, -1).topk(k, dim=-1, sorted=False)
        return top.values, torch.cat(all_index, -1).gather(-1, top.indices)

    def sum_over_shards(self, value: Tensor) -> Tensor:
        return value if not self.sharded else _SumOverShards.apply(value, self.latent_group)

    def average_gradients(self, part: Dictionary) -> None:
        """Replicas of one shard average their gradients (DDP does this when unsharded)."""
        if not self.sharded or self.replicas == 1:
            return
        for param in part.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad, group=self.replica_group)
                param.grad /= self.replicas

    def clip_grad_norm_(self, part: torch.nn.Module, max_norm: float) -> None:
        """torch's clip_grad_norm_ over the full dictionary's gradient, whose sharded part is spread over ranks."""
        if not self.sharded:
            torch.nn.utils.clip_grad_norm_(part.parameters(), max_norm)
            return
        grads = {name: p.grad for name, p in part.named_parameters() if p.grad is not None}
        squares = sum(g.pow(2).sum() for name, g in grads.items() if name in part.latent_dims)
        dist.all_reduce(squares, group=self.latent_group)
        total = (squares + sum(g.pow(2).sum() for name, g in grads.items() if name not in part.latent_dims)).sqrt()
        coefficient = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads.values():
            g.mul_(coefficient)

    def any_fired(self, fired: Tensor) -> Tensor:
        """Latents that fired on any replica's rows (this shard's latents when sharded)."""
        if not self.sharded:
            return distributed.all_reduce_any(fired)
        if self.replicas == 1:
            return fired
        counts = fired.to(torch.int32)
        dist.all_reduce(counts, group=self.replica_group)
        return counts > 0


def run_label(cfg: DictionaryConfig) -> str:
    return f"{cfg.architecture}{' transcoder' if cfg.is_transcoder else ''}"


def supported() -> str:
    """What latent sharding trains, for error messages."""
    names = ", ".join(name for name, variant in VARIANTS.items() if variant.latent_shardable)
    return (f"SAEs and per-layer transcoders of {names} (relu with relu_form='anthropic'; cross-layer transcoders "
            "through train_clt; not crosscoders)")


def check_shardable(cfg: DictionaryConfig, shards: int) -> None:
    """Raise a MechscopeError unless `cfg` trains split over `shards` latent shards (checked before any rank starts)."""
    variant = make_variant(cfg)
    if not variant.latent_shardable:
        raise MechscopeError(f"latent sharding trains {supported()}, got {run_label(cfg)} ({variant.run_name()})")
    if cfg.d_sae % shards:
        raise MechscopeError(f"d_sae={cfg.d_sae} must divide evenly over latent_shards={shards}")


class _SumOverShards(torch.autograd.Function):
    """all_reduce(sum) of each shard's partial (x_hat, an L1 or L0 term, a count); every rank's loss is the same,
    so each partial's gradient is the gradient at the sum."""

    @staticmethod
    def forward(ctx, partial: Tensor, group) -> Tensor:
        total = partial.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


class _SumGradientOverShards(torch.autograd.Function):
    """Identity whose gradient is summed over the shards: b_dec enters every shard's encoder."""

    @staticmethod
    def forward(ctx, value: Tensor, group) -> Tensor:
        ctx.group = group
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class DictionaryShard(Dictionary):
    """One rank's slice of a dictionary's latents; its seams (latent_sum, row_winners, batch_winners) reach the
    other shards, so the variant's step and forward are the full dictionary's.

    Seeded initialisation keeps this shard's rows of the full dictionary's draw, so every shard count starts
    from the single-process dictionary."""

    def __init__(self, cfg: DictionaryConfig, layout: ShardLayout, device: str | torch.device = "cpu"):
        check_shardable(cfg, layout.shards)
        self.width = cfg.d_sae // layout.shards
        self.first_latent = layout.shard * self.width
        self.layout = layout
        super().__init__(cfg, device=device)
        variant = self.variant
        self.latent_dims = {"W_enc": 1, "b_enc": 0, "W_dec": 0,
                            **{name: 0 for name in variant.latent_parameters + variant.latent_buffers}}

    @property
    def d_sae(self) -> int:
        return self.width

    def unsharded(self) -> Dictionary:
        """An empty full dictionary of this shard's config (what the gathered slices fill)."""
        return Dictionary(self.cfg, device=self.W_enc.device, initialise=False)

    def random_rows(self, width: int, generator: torch.Generator | None) -> Tensor:
        """A seeded draw is the full dictionary's (this shard keeps its rows); the constructor's unseeded one is
        this shard's width only."""
        if generator is None:
            return super().random_rows(width, generator)
        return torch.randn(self.cfg.d_sae, width, generator=generator)[self.latents].clone()

    @property
    def latents(self) -> slice:
        return slice(self.first_latent, self.first_latent + self.width)

    def input_centre(self) -> Tensor:
        return _SumGradientOverShards.apply(super().input_centre(), self.layout.latent_group)

    # ----- the seams --------------------------------------------------------------------------------------
    def latent_sum(self, partial: Tensor) -> Tensor:
        return self.layout.sum_over_shards(partial)

    def row_winners(self, values: Tensor, latents: Tensor, k: int) -> tuple[SparseCodes, Tensor]:
        values, latents = self.layout.merge_top_k(values, latents + self.first_latent, k)
        rows = torch.arange(values.shape[0], device=values.device).unsqueeze(1).expand_as(latents)
        return self._own(rows.reshape(-1), latents.reshape(-1), values.reshape(-1), values.shape[0])

    def batch_winners(self, values: Tensor, flat: Tensor, n: int, batch: int) -> tuple[SparseCodes, Tensor]:
        full = self.cfg.d_sae
        values, flat = self.layout.merge_top_k(values, flat // self.width * full + flat % self.width +
                                               self.first_latent, n)
        flat, order = flat.sort()
        return self._own(flat // full, flat % full, values[order], batch)

    def _own(self, rows: Tensor, latents: Tensor, values: Tensor, batch: int) -> tuple[SparseCodes, Tensor]:
        """The winners among this shard's latents, as pairs of its local latents (global order kept)."""
        mine = (latents >= self.first_latent) & (latents < self.first_latent + self.width)
        return SparseCodes(rows[mine], latents[mine] - self.first_latent, batch, self.width), values[mine]


# ----- starting the processes ------------------------------------------------------------------------
def needs_spawn(shards: int) -> bool:
    """latent_shards > 1 asked for outside torchrun or an existing process group: start local ranks."""
    return shards > 1 and not (dist.is_available() and dist.is_initialized()) and "WORLD_SIZE" not in os.environ


def spawn(processes: int, fn, args: tuple) -> None:
    """Run fn(*args) in `processes` local gloo ranks (CPU threads split between them). They meet through a file
    store, not a TCP port picked in advance (which another process could take before rank 0 binds it)."""
    threads = max(1, torch.get_num_threads() // processes)
    rendezvous = Path(tempfile.mkdtemp(prefix="mechscope-ranks-"))
    try:
        mp.start_processes(_rank_main, args=(processes, f"file://{rendezvous / 'store'}", threads, fn, args),
                           nprocs=processes, join=True, start_method="spawn")
    except (TypeError, AttributeError, pickle.PicklingError) as err:  # raised while handing args to the first rank
        raise MechscopeError(
            f"latent-sharded training starts {processes} processes and sends each its source, and this source cannot "
            f"be sent ({err}); pass an activation cache (or its directory) or SyntheticFeatures, or start the ranks "
            "with torchrun so that each opens its own stream") from err
    finally:
        shutil.rmtree(rendezvous, ignore_errors=True)


def _rank_main(rank: int, world: int, init_method: str, threads: int, fn, args: tuple) -> None:
    """One rank: fn(*args) in the gloo group, then an exit that skips interpreter and C++ static teardown, where
    a C++ thread destroyed unjoined aborts the process ("terminate called without an active exception", seen in
    CI and in one of ~150 2-rank runs here; where exactly is not pinned down). A rank that aborts prints its stacks."""
    faulthandler.enable(all_threads=True)
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        fn(*args)
        dist.barrier()  # no rank tears its connections down while another still uses them
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
