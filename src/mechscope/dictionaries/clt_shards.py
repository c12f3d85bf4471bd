"""Latent-sharded cross-layer transcoders: each rank holds the same slice of every layer's latents.

A rank holds W_enc[:, :, slice], b_enc / log_threshold / threshold [:, slice] and W_dec[i][slice] for every
layer i; b_dec and W_skip are replicated. The CLT reaches the other shards through four seams, as a
`DictionaryShard` does: `latent_sum` (the tanh penalty, the L0 and the per-layer selection counts, summed),
`plus_latents` (every output layer's partial prediction, summed, then added to b_dec), `top_k_mask` (each token's
top k over all layers' latents, merged from every shard's candidates) and `largest` (the per-layer values that set
a TopK CLT's thresholds). The offset (b_dec, x @ W_skip) is added once after the sum, so the step equals the
single-process step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder
from mechscope.dictionaries.latent_shards import ShardLayout
from mechscope.errors import MechscopeError


def check_clt_shardable(cfg: CLTConfig, shards: int, world: int | None = None) -> None:
    """Raise a MechscopeError unless `cfg` splits over `shards` latent shards (one replica: world == shards)."""
    if cfg.d_latent % shards:
        raise MechscopeError(f"d_latent={cfg.d_latent} must divide evenly over latent_shards={shards}")
    if world is not None and world != shards:
        raise MechscopeError(f"a latent-sharded CLT trains on one data replica: the {world} processes must equal "
                             f"latent_shards={shards}")


class CLTShard(CrossLayerTranscoder):
    """One rank's slice of a cross-layer transcoder's latents (the same slice of every layer). Seeded
    initialisation keeps this shard's part of the full CLT's draw."""

    def __init__(self, cfg: CLTConfig, layout: ShardLayout, device: str | torch.device = "cpu"):
        check_clt_shardable(cfg, layout.shards)
        self.width = cfg.d_latent // layout.shards
        self.first_latent = layout.shard * self.width
        self.layout = layout
        super().__init__(cfg, device)
        self.latent_dims = {"W_enc": 2, "b_enc": 1, "log_threshold": 1, "threshold": 1,
                            **{f"W_dec.{i}": 0 for i in range(cfg.n_layers)}}

    @property
    def d_latent(self) -> int:
        return self.width

    def unsharded(self) -> CrossLayerTranscoder:
        """An empty full CLT of this shard's config (what the gathered slices fill)."""
        return CrossLayerTranscoder(self.cfg, self.W_enc.device, initialise=False)

    def random_latents(self, shape: torch.Size, dim: int, generator: torch.Generator | None) -> Tensor:
        if generator is None:
            return super().random_latents(shape, dim, generator)
        full = list(shape)
        full[dim] = self.cfg.d_latent
        return torch.randn(full, generator=generator).narrow(dim, self.first_latent, self.width).clone()

    # ----- the seams --------------------------------------------------------------------------------------
    def latent_sum(self, partial: Tensor) -> Tensor:
        return self.layout.sum_over_shards(partial)

    def plus_latents(self, out: Tensor, codes: Tensor) -> Tensor:
        """The offset plus every shard's writes, summed once: b_dec's gradient is the single-process one."""
        return out + self.latent_sum(super().plus_latents(torch.zeros_like(out), codes))

    def top_k_mask(self, flat: Tensor, k: int) -> Tensor:
        width, full = self.width, self.cfg.d_latent
        local = flat.topk(min(k, flat.shape[1]), dim=-1, sorted=False)
        offered = local.indices // width * full + local.indices % width + self.first_latent
        _, winners = self.layout.merge_top_k(local.values, offered, k)
        layer, latent = winners // full, winners % full - self.first_latent
        mine = (latent >= 0) & (latent < width)
        rows = torch.arange(flat.shape[0], device=flat.device)[:, None].expand_as(winners)
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[rows[mine], (layer * width + latent)[mine]] = True
        return mask

    def largest(self, values: Tensor, count: int) -> Tensor:
        """Every shard offers its `count` largest per row (padded with -inf where it holds fewer)."""
        offered = values.new_full((values.shape[0], count), float("-inf"))
        held = min(count, values.shape[1])
        offered[:, :held] = values.topk(held, dim=1).values
        merged, _ = self.layout.merge_top_k(offered, torch.zeros_like(offered, dtype=torch.long), count)
        return merged.sort(dim=1, descending=True).values
