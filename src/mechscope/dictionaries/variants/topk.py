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
        """Each token's k largest pre-activations (among the `mask`ed latents) as selected pairs, and their values;
        a latent shard merges its candidates with the other shards' here."""
        values, indices = self.candidates(d, x_in, k, mask)
        return SparseCodes.from_topk(indices, d.d_sae), values.reshape(-1)

    def candidates(self, d, x_in: Tensor, k: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """[batch, k] values and indices by the fused encoder, which never holds [batch, d_sae]."""
        return fused_topk(x_in - d.input_centre(), d.W_enc, d.b_enc, k, mask=mask)

    def decode_selected(self, d, values: Tensor, codes: SparseCodes) -> Tensor:
        """codes @ W_dec without the offset (a latent shard adds its part to the other shards')."""
        return decode(values, d.W_dec, codes, d.sparse_kernels)

    def count_dead(self, dead_mask: Tensor) -> int:
        return int(dead_mask.sum())

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        top = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())

    def encode(self, d, x_in: Tensor) -> Tensor:
        """Fused when no gradient is recorded (fused_topk has none); else through the dense pre-activations."""
        if torch.is_grad_enabled() and (x_in.requires_grad or d.W_enc.requires_grad):
            return super().encode(d, x_in)
        values, indices = self.candidates(d, x_in.reshape(-1, d.d_in), self.cfg.k)
        codes = values.new_zeros(indices.shape[0], d.d_sae).scatter(-1, indices, values.relu())
        return codes.reshape(*x_in.shape[:-1], d.d_sae)

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        codes, raw = self.select_pairs(d, x_in)
        values = encoder_values(raw, x_in, d.input_centre(), d.W_enc, d.b_enc, codes, d.sparse_kernels).relu()
        recon_terms, x_hat = self.reconstruction(d, values, codes, x_in, ctx)
        aux = self.auxk(d, x_in, x_hat.detach(), ctx)
        total = recon_terms + self.cfg.aux_coefficient * aux
        fired = torch.zeros(d.d_sae, dtype=torch.bool, device=x_in.device)
        fired[codes.cols[values > 0]] = True
        return {"total": total, "recon": recon_terms.detach(), "aux": aux.detach(), "sparsity": torch.zeros(()),
                "l0": (values > 0).sum().float() / x_in.shape[0], "fvu": batch_fvu(ctx.target_for(x_in), x_hat),
                "fired": fired,
                "min_value": values.detach()[values > 0].min() if (values > 0).any() else torch.zeros(())}

    def reconstruction(self, d, values, codes, x_in, ctx) -> tuple[Tensor, Tensor]:
        x_hat = self.decode_selected(d, values, codes) + d.offset(x_in)
        return squared_error(ctx.target_for(x_in), x_hat) / (x_in.shape[0] * ctx.variance), x_hat

    def auxk(self, d, x_in: Tensor, x_hat: Tensor, ctx: StepContext) -> Tensor:
        """Gao et al.'s AuxK: the top k_aux dead latents reconstruct the residual target - x_hat."""
        k_aux = 0 if ctx.dead_mask is None else min(self.cfg.k_aux, self.count_dead(ctx.dead_mask))
        if k_aux == 0:
            return torch.zeros((), device=x_in.device)
        codes, raw = self.top_pairs(d, x_in, k_aux, mask=ctx.dead_mask)
        values = encoder_values(raw, x_in, d.input_centre(), d.W_enc, d.b_enc, codes, d.sparse_kernels).relu()
        e_hat = self.decode_selected(d, values, codes)
        return squared_error(ctx.target_for(x_in) - x_hat, e_hat) / (x_in.shape[0] * ctx.variance)


class BatchTopK(TopK):
    """The top k * batch activations of the whole batch; inference uses a learned global threshold."""

    saved_tensors = ("threshold",)

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
        """The k * batch largest pre-activations of the batch and their values (in the codes' order)."""
        batch = pre.shape[0]
        flat = pre.reshape(-1)
        top = flat.topk(min(self.cfg.k * batch, flat.numel()), sorted=False)
        chosen, order = top.indices.sort()
        return SparseCodes(chosen // d.d_sae, chosen % d.d_sae, batch, d.d_sae), top.values[order]

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        if bool((d.threshold < 0).all()):  # before any training step: fall back to per-token TopK
            return super().activate(d, x_in, pre)
        return pre.relu() * (pre > d.threshold)

    @torch.no_grad()
    def after_step(self, d, terms: dict[str, Tensor]) -> None:
        """theta <- EMA of the smallest selected activation (Bussmann et al.), shared by every latent."""
        value = terms["min_value"]
        if not bool(value > 0):
            return
        current = d.threshold[0]
        new = value if current < 0 else 0.99 * current + 0.01 * value
        d.threshold.fill_(float(new))


class Matryoshka(BatchTopK):
    """BatchTopK whose nested prefixes each reconstruct x: loss = sum over prefixes of their errors.

    Prefix widths default to 1/16, 1/8, 1/4, 1/2 and all of the dictionary.
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
        group = torch.searchsorted(widths, codes.cols, right=True)
        target = ctx.target_for(x_in)
        x_hat = d.offset(x_in).expand_as(target)
        total = torch.zeros((), device=x_in.device)
        for g in range(len(widths)):
            keep = group == g
            if bool(keep.any()):
                x_hat = x_hat + decode(values[keep], d.W_dec, codes.subset(keep), d.sparse_kernels)
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
