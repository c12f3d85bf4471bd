"""TopK (Gao et al. 2024), BatchTopK (Bussmann et al. 2024) and Matryoshka BatchTopK, with AuxK.

All three select a sparse set of (token, latent) pairs and train through the sparse kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionaries.kernels import fused_topk
from mechscope.dictionaries.sparse_codes import SparseCodes, decode, encoder_values
from mechscope.dictionaries.variants.base import StepContext, Variant, batch_fvu, squared_error
from mechscope.errors import MechscopeError


class TopK(Variant):
    """codes = ReLU(TopK_k(pre)); loss = ||x - x_hat||^2 / variance + aux_coefficient * AuxK."""

    sparse = True
    hyperparameters = ("k", "aux_k", "aux_coefficient")
    latent_shardable = True

    @classmethod
    def validate_config(cls, cfg) -> None:
        if not 0 < cfg.k <= cfg.d_sae:
            raise MechscopeError(f"k must be in 1..d_sae={cfg.d_sae}, got {cfg.k}")

    @classmethod
    def sweep_overrides(cls, value: float) -> dict:
        return {"k": int(value)}

    def knob_label(self) -> str:
        return f"k{self.cfg.k}"

    def init_from_data(self, d, b_dec: Tensor, sample: Tensor, target: Tensor | None = None) -> None:
        super().init_from_data(d, b_dec, sample, target)
        device = d.W_enc.device
        scale_encoder_to_data(d, sample.to(device), (sample if target is None else target).to(device))

    def select_pairs(self, d, x_in: Tensor) -> tuple[SparseCodes, Tensor]:
        """The selected pairs and their no-grad pre-activations (in the codes' order)."""
        return self.top_pairs(d, x_in, self.cfg.k)

    def top_pairs(self, d, x_in: Tensor, k: int, mask: Tensor | None = None) -> tuple[SparseCodes, Tensor]:
        """Each token's k largest pre-activations (among the `mask`ed latents) as selected pairs, and their values.
        A latent shard offers its own best min(k, d_sae), padded with -inf where fewer latents are eligible so
        that every shard offers one shape, and keeps its part of the winners."""
        width = min(k, d.d_sae)
        eligible = width if mask is None else min(width, int(mask.sum()))
        if eligible == width:
            values, latents = self.candidates(d, x_in, width, mask)
        else:
            values = x_in.new_full((x_in.shape[0], width), float("-inf"))
            latents = torch.zeros((x_in.shape[0], width), dtype=torch.long, device=x_in.device)
            if eligible:
                values[:, :eligible], latents[:, :eligible] = self.candidates(d, x_in, eligible, mask)
        return d.row_winners(values, latents, k)

    def candidates(self, d, x_in: Tensor, k: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """[batch, k] values and indices by the fused encoder, which never holds [batch, d_sae]."""
        return fused_topk(x_in - d.input_centre(), d.W_enc, d.b_enc, k, mask=mask)

    def decode_selected(self, d, values: Tensor, codes: SparseCodes) -> Tensor:
        """codes @ W_dec over every latent, without the offset."""
        return d.latent_sum(decode(values, d.W_dec, codes, d.sparse_kernels))

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        rows = pre.reshape(-1, d.d_sae)
        top = rows.topk(min(self.cfg.k, d.d_sae), dim=-1, sorted=False)
        codes, values = d.row_winners(top.values, top.indices, self.cfg.k)
        return codes.dense(values.relu()).reshape(pre.shape)

    def encode(self, d, x_in: Tensor) -> Tensor:
        """Fused when no gradient is recorded (fused_topk has none); else through the dense pre-activations."""
        if torch.is_grad_enabled() and (x_in.requires_grad or d.W_enc.requires_grad):
            return super().encode(d, x_in)
        codes, values = self.top_pairs(d, x_in.reshape(-1, d.d_in), self.cfg.k)
        return codes.dense(values.relu()).reshape(*x_in.shape[:-1], d.d_sae)

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        codes, raw = self.select_pairs(d, x_in)
        values = encoder_values(raw, x_in, d.input_centre(), d.W_enc, d.b_enc, codes, d.sparse_kernels).relu()
        recon_terms, x_hat = self.reconstruction(d, values, codes, x_in, ctx)
        aux = self.auxk(d, x_in, x_hat.detach(), ctx)
        total = recon_terms + self.cfg.aux_coefficient * aux
        fired = torch.zeros(d.d_sae, dtype=torch.bool, device=x_in.device)
        fired[codes.cols[values > 0]] = True
        positive = values.detach()[values > 0]
        return {"total": total, "recon": recon_terms.detach(), "aux": aux.detach(), "sparsity": torch.zeros(()),
                "l0": d.latent_sum((values > 0).sum().float()) / x_in.shape[0],
                "fvu": batch_fvu(ctx.target_for(x_in), x_hat), "fired": fired,
                "min_value": positive.min() if positive.numel() else values.new_full((), float("inf"))}

    def reconstruction(self, d, values, codes, x_in, ctx) -> tuple[Tensor, Tensor]:
        x_hat = self.decode_selected(d, values, codes) + d.offset(x_in)
        return squared_error(ctx.target_for(x_in), x_hat) / (x_in.shape[0] * ctx.variance), x_hat

    def auxk(self, d, x_in: Tensor, x_hat: Tensor, ctx: StepContext) -> Tensor:
        """Gao et al.'s AuxK: the top k_aux dead latents reconstruct the residual target - x_hat."""
        k_aux = 0 if ctx.dead_mask is None else min(self.cfg.k_aux, int(d.latent_sum(ctx.dead_mask.sum())))
        if k_aux == 0:
            return torch.zeros((), device=x_in.device)
        codes, raw = self.top_pairs(d, x_in, k_aux, mask=ctx.dead_mask)
        values = encoder_values(raw, x_in, d.input_centre(), d.W_enc, d.b_enc, codes, d.sparse_kernels).relu()
        e_hat = self.decode_selected(d, values, codes)
        return squared_error(ctx.target_for(x_in) - x_hat, e_hat) / (x_in.shape[0] * ctx.variance)


class BatchTopK(TopK):
    """The top k * batch activations of the whole batch; inference uses a learned global threshold."""

    saved_tensors = ("threshold",)
    latent_buffers = ("threshold",)
    step_activations = 5.0  # pre, and the batch-wide topk's working copy and int64 order

    def add_parameters(self, d) -> None:
        d.register_buffer("threshold", torch.zeros(d.d_sae, device=d.W_enc.device))

    def init_parameters(self, d) -> None:
        d.threshold.fill_(-1.0)  # negative: not estimated yet

    encode = Variant.encode  # the learned threshold, not a per-token top k, decides at inference

    def select_pairs(self, d, x_in: Tensor) -> tuple[SparseCodes, Tensor]:
        """A batch-level selection, so over the dense [batch, d_sae] pre-activations: a per-row running top k
        cannot know how many of the k * batch each row contributes."""
        with torch.no_grad():
            return self.select(d, d.pre_activations(x_in))

    def select(self, d, pre: Tensor) -> tuple[SparseCodes, Tensor]:
        """The k * batch largest pre-activations of the batch over every latent and their values (in the codes'
        order); a latent shard offers its own k * batch best (or all it has)."""
        batch, flat = pre.shape[0], pre.reshape(-1)
        top = flat.topk(min(self.cfg.k * batch, flat.numel()), sorted=False)
        return d.batch_winners(top.values, top.indices, self.cfg.k * batch, batch)

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        if bool((d.threshold < 0).all()):  # before any training step: fall back to per-token TopK
            return super().activate(d, x_in, pre)
        return pre.relu() * (pre > d.threshold)

    @torch.no_grad()
    def after_step(self, d, terms: dict[str, Tensor]) -> None:
        """theta <- EMA of the smallest selected activation (Bussmann et al.), shared by every latent."""
        value = terms["min_value"]
        if not bool((value > 0) & value.isfinite()):  # nothing positive selected (+inf), or not trained yet (0)
            return
        current = d.threshold[0]
        new = value if current < 0 else 0.99 * current + 0.01 * value
        d.threshold.fill_(float(new))


class Matryoshka(BatchTopK):
    """BatchTopK whose nested prefixes each reconstruct x: loss = sum over prefixes of their errors.

    Prefix widths default to 1/16, 1/8, 1/4, 1/2 and all of the dictionary. Under latent sharding a prefix may
    end inside any shard: each group's partial decode is summed over the shards before its error is taken.
    """

    hyperparameters = TopK.hyperparameters + ("matryoshka_widths",)

    @classmethod
    def config_defaults(cls, cfg) -> dict:
        d_sae = cfg.d_sae
        return {} if cfg.matryoshka_widths else {"matryoshka_widths": sorted(
            {max(1, d_sae // 16), max(1, d_sae // 8), max(1, d_sae // 4), max(1, d_sae // 2), d_sae})}

    @classmethod
    def validate_config(cls, cfg) -> None:
        super().validate_config(cfg)
        widths = list(cfg.matryoshka_widths)
        if sorted(widths) != widths or widths[-1] != cfg.d_sae or widths[0] < 1:
            raise MechscopeError(f"matryoshka_widths must increase and end at d_sae={cfg.d_sae}, got {widths}")

    def reconstruction(self, d, values, codes, x_in, ctx) -> tuple[Tensor, Tensor]:
        widths = torch.tensor(self.cfg.matryoshka_widths, device=codes.cols.device)
        group = torch.searchsorted(widths, codes.cols + d.first_latent, right=True)
        target = ctx.target_for(x_in)
        x_hat = d.offset(x_in).expand_as(target)
        total = torch.zeros((), device=x_in.device)
        for g in range(len(widths)):
            keep = group == g
            part = decode(values[keep], d.W_dec, codes.subset(keep), d.sparse_kernels) if bool(keep.any()) else \
                torch.zeros_like(target)
            x_hat = x_hat + d.latent_sum(part)  # a prefix may end inside a latent shard: sum every shard's part
            total = total + squared_error(target, x_hat) / (x_in.shape[0] * ctx.variance)
        return total, x_hat


@torch.no_grad()
def scale_encoder_to_data(d, x: Tensor, y: Tensor) -> None:
    """Scale the encoder so the initial reconstruction of y (x itself for an SAE) has the least-squares best
    magnitude.

    TopK-style selection does not depend on the encoder's scale, so the codes, and with them the
    reconstruction's deviation from b_dec, scale linearly: one scalar s = <y - b, r> / ||r||^2.
    Starting at the right magnitude instead of unit-norm columns shortens the early phase of training.
    """
    offset = d.offset(x)
    residual = d(x) - offset
    target = y - offset
    scale = (target * residual).sum() / residual.pow(2).sum().clamp_min(1e-12)
    if bool(scale > 0):
        d.W_enc.mul_(scale)
