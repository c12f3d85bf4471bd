"""ReLU + L1 (Anthropic April 2024 and the classic unit-norm form) and Gated SAEs (Rajamanoharan et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.dictionaries import resampling
from mechscope.dictionaries.variants.base import StepContext, Variant, dense_terms, squared_error
from mechscope.errors import MechscopeError

RELU_FORMS = ("anthropic", "classic")


class L1Variant(Variant):
    """A variant whose sparsity is an L1 coefficient: swept over the `l1` list, named `..._l1-5`."""

    hyperparameters = ("l1_coefficient",)
    sweep_axis = "l1"
    latent_shardable = True

    @classmethod
    def sweep_overrides(cls, value: float) -> dict:
        return {"l1_coefficient": float(value)}

    def knob_label(self) -> str:
        return f"l1-{self.cfg.l1_coefficient:g}"


class ReLU(L1Variant):
    """codes = ReLU(pre). "anthropic": L1 weighted by decoder row norms, free decoder (rows start at norm
    0.1), no b_dec subtraction before the encoder; "classic": plain L1, unit-norm decoder, resampling."""

    hyperparameters = ("l1_coefficient", "relu_form")
    step_activations = 3.25  # codes, the L1 term's product, the gradient; the bool active mask

    def __init__(self, cfg):
        super().__init__(cfg)
        self.unit_norm_decoder = cfg.relu_form == "classic"

    @property
    def latent_shardable(self) -> bool:
        """The classic form resamples dead latents from one process's view, so only the anthropic form shards."""
        return self.cfg.relu_form == "anthropic"

    @classmethod
    def config_defaults(cls, cfg) -> dict:
        return {"apply_b_dec_to_input": False} if cfg.relu_form == "anthropic" else {}

    @classmethod
    def validate_config(cls, cfg) -> None:
        if cfg.relu_form not in RELU_FORMS:
            raise MechscopeError(f"relu_form must be one of {RELU_FORMS}, got {cfg.relu_form!r}")
        if cfg.is_transcoder and cfg.relu_form == "classic":
            raise MechscopeError("a ReLU transcoder uses relu_form='anthropic' (the classic form resamples dead "
                                 "latents towards inputs, which live in another space); got 'classic'")

    def run_name(self) -> str:
        label = "relu-classic" if self.cfg.relu_form == "classic" else "relu"
        return f"{label}_{self.cfg.d_sae}_{self.knob_label()}"

    @torch.no_grad()
    def init_parameters(self, d) -> None:
        if self.cfg.relu_form == "anthropic":
            d.W_dec.mul_(0.1)
            d.W_enc.mul_(0.1)

    def init_from_data(self, d, b_dec: Tensor, sample: Tensor, target: Tensor | None = None) -> None:
        """The anthropic form never subtracts b_dec from its input, so b_dec starts at zero."""
        if self.cfg.apply_b_dec_to_input:
            super().init_from_data(d, b_dec, sample, target)

    def resample(self, d, optimizer, x: Tensor, dead: Tensor, step: int) -> int:
        """The classic form revives dead latents (Anthropic 2023); the anthropic form does not."""
        return resampling.resample_dead(d, optimizer, x, dead, step) if self.cfg.relu_form == "classic" else 0

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        return pre.relu()

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        codes = d.pre_activations(x_in).relu()
        x_hat = d.latent_sum(codes @ d.W_dec) + d.offset(x_in)
        weights = self.decoder_norms(d) if self.cfg.relu_form == "anthropic" else 1.0
        sparsity = self.cfg.l1_coefficient * d.latent_sum((codes * weights).sum(-1).mean())
        return dense_terms(d, ctx.target_for(x_in), codes, x_hat, sparsity, ctx)


class Gated(L1Variant):
    """f = 1[pi_gate > 0] * ReLU(pi_mag), W_mag = W_gate * exp(r_mag) (tied), b_gate stored as b_enc.

    Loss (the paper's eq. 8): ||x - x_hat(f)||^2 + l1 * ||ReLU(pi_gate)||_1
    + ||x - x_hat_frozen(ReLU(pi_gate))||^2, the last through a detached copy of the decoder.
    """

    saved_tensors = ("r_mag", "b_mag")
    latent_parameters = ("r_mag", "b_mag")
    step_activations = 8.25  # gate, magnitude and frozen paths with their gradients

    @classmethod
    def validate_config(cls, cfg) -> None:
        if cfg.is_transcoder:
            raise MechscopeError("Gated dictionaries subtract b_dec from their input, so they cannot be transcoders; "
                                 "use relu, topk, batchtopk, matryoshka or jumprelu")

    def add_parameters(self, d) -> None:
        d.r_mag = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))
        d.b_mag = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))

    def init_parameters(self, d) -> None:
        d.r_mag.data.zero_()
        d.b_mag.data.zero_()

    def _gate_and_codes(self, d, x_in: Tensor) -> tuple[Tensor, Tensor]:
        projected = d.centred(x_in) @ d.W_enc
        pi_gate = projected + d.b_enc
        codes = (pi_gate > 0).to(x_in.dtype) * (projected * d.r_mag.exp() + d.b_mag).relu()
        return pi_gate, codes

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        return self._gate_and_codes(d, x_in)[1]

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        pi_gate, codes = self._gate_and_codes(d, x_in)
        x_hat = d.latent_sum(codes @ d.W_dec) + d.b_dec
        gate = pi_gate.relu()
        sparsity = self.cfg.l1_coefficient * d.latent_sum(gate.sum(-1).mean())
        frozen = d.latent_sum(gate @ d.W_dec.detach()) + d.b_dec.detach()
        aux = squared_error(x_in, frozen) / x_in.shape[0]
        return dense_terms(d, x_in, codes, x_hat, sparsity, ctx, extra=aux)
