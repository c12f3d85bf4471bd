"""Crosscoders: one latent space read from and written to n sources (layers of one model, or two models).

The dictionary sees the n sources concatenated (d_in = n * d_source), so reconstruction summed over the
sources is the ordinary squared error; what differs is that each latent's sparsity weight is the *sum* of
its per-source decoder norms (Lindsey et al. 2024), which lets a latent live in one source only.
"crosscoder" is BatchTopK ranked by that weight (Minder et al. 2025; dictionary_learning's
BatchTopKCrossCoder); "crosscoder-l1" is ReLU + L1 of the Anthropic form.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.dictionaries.sparse_codes import SparseCodes
from mechscope.dictionaries.variants.base import StepContext, Variant
from mechscope.dictionaries.variants.l1 import ReLU
from mechscope.dictionaries.variants.topk import BatchTopK, TopK
from mechscope.errors import MechscopeError


class SourceAxis:
    """What every crosscoder shares: n equal sources, free decoder norms, penalty weight = sum of source norms."""

    unit_norm_decoder = False
    latent_shardable = False

    @classmethod
    def config_defaults(cls, cfg) -> dict:
        """Two sources (model A and model B) unless told otherwise."""
        return {**super().config_defaults(cfg), **({"n_sources": 2} if cfg.n_sources == 1 else {})}

    @classmethod
    def validate_config(cls, cfg) -> None:
        super().validate_config(cfg)
        if cfg.n_sources < 2 or cfg.d_in % cfg.n_sources:
            raise MechscopeError(f"a crosscoder needs n_sources >= 2 that divides d_in={cfg.d_in}, "
                                 f"got n_sources={cfg.n_sources}")

    @torch.no_grad()
    def init_parameters(self, d) -> None:
        """Every source starts from the same decoder and encoder (dictionary_learning's same_init_for_all_layers),
        so a latent's decoders stay equal wherever the sources carry the same activations."""
        decoder = d.W_dec.reshape(d.d_sae, self.cfg.n_sources, -1)
        decoder.copy_(decoder[:, :1].expand_as(decoder).clone())
        d.W_enc.copy_(d.W_dec.T)
        super().init_parameters(d)

    def decoder_norms(self, d) -> Tensor:
        """[d_sae] sum over sources of each latent's decoder norm in that source."""
        return d.W_dec.reshape(d.d_sae, self.cfg.n_sources, -1).norm(dim=-1).sum(-1)


class CrossCoder(SourceAxis, BatchTopK):
    """BatchTopK over relu(pre) * sum of source decoder norms; the threshold applies to that product too."""

    hyperparameters = TopK.hyperparameters + ("n_sources",)

    def select(self, d, pre: Tensor) -> tuple[SparseCodes, Tensor]:
        scores = (pre.relu() * self.decoder_norms(d).detach()).reshape(-1)
        top = scores.topk(min(self.cfg.k * pre.shape[0], scores.numel()), sorted=False)
        chosen = top.indices.sort().values
        positive = top.values[top.values > 0]
        self._min_score = positive.min() if positive.numel() else torch.zeros((), device=pre.device)
        return SparseCodes(chosen // d.d_sae, chosen % d.d_sae, pre.shape[0], d.d_sae), pre.reshape(-1)[chosen]

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        codes = pre.relu()
        scores = codes * self.decoder_norms(d)
        if bool((d.threshold < 0).all()):  # before any training step: per-token top k of the same scores
            top = scores.topk(self.cfg.k, dim=-1, sorted=False)
            return torch.zeros_like(codes).scatter(-1, top.indices, codes.gather(-1, top.indices))
        return codes * (scores > d.threshold)

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        terms = super().loss(d, x_in, ctx)
        terms["min_value"] = self._min_score  # the threshold learns the smallest selected *score*
        return terms


class CrossCoderL1(SourceAxis, ReLU):
    """ReLU codes; loss = sum over sources of ||x_s - x_hat_s||^2 + l1 * sum_i f_i * sum_s ||W_dec[i, s]||."""

    hyperparameters = ("l1_coefficient", "n_sources")
    run_name = Variant.run_name

    @classmethod
    def config_defaults(cls, cfg) -> dict:
        return {**super().config_defaults(cfg), "relu_form": "anthropic", "apply_b_dec_to_input": False}
