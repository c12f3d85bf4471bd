"""Latent-sharded training (Templeton et al. 2024's scale): each process holds a slice of the latents.

A rank holds W_enc[:, slice], b_enc[slice] and W_dec[slice, :]; b_dec and the input scale are replicated.
TopK: each rank takes its local top k, the (value, global index) candidates are all-gathered, the global
top k is chosen identically everywhere, each rank decodes the winners in its slice and an all_reduce(sum)
gives x_hat. The step equals the single-process step. World = replicas x shards: ranks r*S .. r*S+S-1
share one data slice (a latent group); ranks holding the same slice average their gradients (a replica group).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
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
from mechscope.dictionaries.variants import make_variant
from mechscope.dictionaries.variants.topk import TopK
from mechscope.errors import MechscopeError

SHARDED = ("W_enc", "b_enc", "W_dec")  # split along the latents; every other parameter is replicated


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
    def gather(self, part: Dictionary) -> Dictionary | None:
        """The full dictionary on global rank 0 (None on the others); unsharded: the dictionary itself."""
        if not self.sharded:
            return part
        if self.replica:
            return None
        full = Dictionary(part.variant.cfg, device=part.W_enc.device) if self.shard == 0 else None
        for name, dim in (("W_enc", 1), ("b_enc", 0), ("W_dec", 0)):
            tensor = getattr(part, name).detach().contiguous()
            pieces = [torch.empty_like(tensor) for _ in range(self.shards)] if full is not None else None
            dist.gather(tensor, pieces, dst=0, group=self.latent_group)
            if full is not None:
                getattr(full, name).copy_(torch.cat(pieces, dim))
        if full is not None:
            full.b_dec.copy_(part.b_dec)
        return full

    # ----- collectives of the training step --------------------------------------------------------
    def merge_top_k(self, values: Tensor, index: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """[batch, k] global winners (values, global latent index) from every shard's local candidates."""
        all_values = [torch.empty_like(values) for _ in range(self.shards)]
        all_index = [torch.empty_like(index) for _ in range(self.shards)]
        dist.all_gather(all_values, values.contiguous(), group=self.latent_group)
        dist.all_gather(all_index, index.contiguous(), group=self.latent_group)
        top = torch.cat(all_values, 1).topk(k, dim=1, sorted=False)
        return top.values, torch.cat(all_index, 1).gather(1, top.indices)

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

    def clip_grad_norm_(self, part: Dictionary, max_norm: float) -> None:
        """torch's clip_grad_norm_ over the full dictionary's gradient, whose sharded part is spread over ranks."""
        if not self.sharded:
            torch.nn.utils.clip_grad_norm_(part.parameters(), max_norm)
            return
        grads = {name: p.grad for name, p in part.named_parameters() if p.grad is not None}
        squares = sum(g.pow(2).sum() for name, g in grads.items() if name in SHARDED)
        dist.all_reduce(squares, group=self.latent_group)
        total = (squares + sum(g.pow(2).sum() for name, g in grads.items() if name not in SHARDED)).sqrt()
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

    def total(self, value: Tensor) -> Tensor:
        """Sum of a per-shard count over the latent group (no gradient)."""
        value = value.detach().clone()
        dist.all_reduce(value, group=self.latent_group)
        return value


def run_label(cfg: DictionaryConfig) -> str:
    return f"{cfg.architecture}{' transcoder' if cfg.is_transcoder else ''}"


class _SumOverShards(torch.autograd.Function):
    """all_reduce(sum) of each shard's partial reconstruction; every rank's loss is the same, so each partial's
    gradient is the gradient at the sum."""

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


class ShardedTopK(TopK):
    """TopK whose selection merges every shard's candidates and whose decoder sums every shard's part."""

    def __init__(self, cfg: DictionaryConfig, layout: ShardLayout, start: int):
        super().__init__(cfg)
        self.layout, self.start = layout, start

    def top_pairs(self, d, x_in: Tensor, k: int, mask: Tensor | None = None) -> tuple[SparseCodes, Tensor]:
        """This shard's candidates (the fused encoder's local top k) merged with every other shard's; a shard with
        fewer eligible latents than k pads with -inf so every rank gathers the same shape."""
        width = min(k, d.d_sae)
        local = min(width, d.d_sae if mask is None else int(mask.sum()))
        values = x_in.new_full((x_in.shape[0], width), float("-inf"))
        index = torch.zeros((x_in.shape[0], width), dtype=torch.long, device=x_in.device)
        if local:
            values[:, :local], index[:, :local] = self.candidates(d, x_in, local, mask)
        values, index = self.layout.merge_top_k(values, index + self.start, k)
        mine = (index >= self.start) & (index < self.start + d.d_sae)
        rows = torch.arange(x_in.shape[0], device=x_in.device).unsqueeze(1).expand_as(index)[mine]
        return SparseCodes(rows, index[mine] - self.start, x_in.shape[0], d.d_sae), values[mine]

    def decode_selected(self, d, values: Tensor, codes: SparseCodes) -> Tensor:
        return self.layout.sum_over_shards(super().decode_selected(d, values, codes))

    def count_dead(self, dead_mask: Tensor) -> int:
        return int(self.layout.total(dead_mask.sum()))

    def loss(self, d, x_in: Tensor, ctx) -> dict[str, Tensor]:
        terms = super().loss(d, x_in, ctx)
        terms["l0"] = self.layout.total(terms["l0"])
        return terms


class DictionaryShard(Dictionary):
    """One rank's slice of a dictionary's latents; forward and the loss reach across the other shards.

    Seeded initialisation keeps this shard's rows of the full dictionary's draw, so every shard count starts
    from the single-process dictionary."""

    def __init__(self, cfg: DictionaryConfig, layout: ShardLayout, device: str | torch.device = "cpu"):
        if type(make_variant(cfg)) is not TopK or cfg.is_transcoder:
            raise MechscopeError(f"latent sharding trains TopK SAEs (architecture 'topk'), got {run_label(cfg)}")
        if cfg.d_sae % layout.shards:
            raise MechscopeError(f"d_sae={cfg.d_sae} must divide evenly over latent_shards={layout.shards}")
        width = cfg.d_sae // layout.shards
        self.full_width = 0  # the constructor's unseeded draw: this shard's width only
        super().__init__(replace(cfg, d_sae=width), device=device)
        self.full_width = cfg.d_sae
        self.latents = slice(layout.shard * width, (layout.shard + 1) * width)
        self.layout = layout
        self.variant = ShardedTopK(cfg, layout, self.latents.start)

    def random_rows(self, width: int, generator: torch.Generator | None) -> Tensor:
        if not self.full_width:
            return super().random_rows(width, generator)
        return torch.randn(self.full_width, width, generator=generator)[self.latents].clone()

    def input_centre(self) -> Tensor:
        return _SumGradientOverShards.apply(super().input_centre(), self.layout.latent_group)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        codes, raw = self.variant.select_pairs(self, x)
        return self.variant.decode_selected(self, raw.relu(), codes) + self.offset(x)


# ----- starting the processes ------------------------------------------------------------------------
def needs_spawn(shards: int) -> bool:
    """latent_shards > 1 asked for outside torchrun or an existing process group: start local ranks."""
    return shards > 1 and not (dist.is_available() and dist.is_initialized()) and "WORLD_SIZE" not in os.environ


def spawn(processes: int, fn, args: tuple) -> None:
    """Run fn(*args) in `processes` local gloo ranks (CPU threads split between them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = max(1, torch.get_num_threads() // processes)
    mp.start_processes(_rank_main, args=(processes, port, threads, fn, args), nprocs=processes, join=True,
                       start_method="spawn")


def _rank_main(rank: int, world: int, port: int, threads: int, fn, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()
