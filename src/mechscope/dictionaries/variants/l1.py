"""ReLU + L1 (Anthropic April 2024 and the classic unit-norm form) and Gated SAEs (Rajamanoharan et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.dictionaries.variants.base import StepContext, Variant, dense_terms, squared_error


class ReLU(Variant):
    """codes = ReLU(pre). "anthropic": L1 weighted by decoder row norms, free decoder, no b_dec
    subtraction before the encoder; "classic": plain L1, unit-norm decoder, dead-latent resampling."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.unit_norm_decoder = cfg.relu_form == "classic"
        if cfg.relu_form == "anthropic":
            cfg.apply_b_dec_to_input = False

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        return pre.relu()

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        codes = d.pre_activations(x_in).relu()
        x_hat = codes @ d.W_dec + d.b_dec
        weights = d.W_dec.norm(dim=1) if self.cfg.relu_form == "anthropic" else 1.0
        sparsity = self.cfg.l1_coefficient * (codes * weights).sum(-1).mean()
        return dense_terms(d, x_in, codes, x_hat, sparsity, ctx)


class Gated(Variant):
    """f = 1[pi_gate > 0] * ReLU(pi_mag), W_mag = W_gate * exp(r_mag) (tied), b_gate stored as b_enc.

    Loss (the paper's eq. 8): ||x - x_hat(f)||^2 + l1 * ||ReLU(pi_gate)||_1
    + ||x - x_hat_frozen(ReLU(pi_gate))||^2, the last through a detached copy of the decoder.
    """

    def add_parameters(self, d) -> None:
        d.r_mag = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))
        d.b_mag = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))

    def init_parameters(self, d) -> None:
        d.r_mag.data.zero_()
        d.b_mag.data.zero_()

    def _gate_and_codes(self, d, x_in: Tensor) -> tuple[Tensor, Tensor]:
        centred = x_in - d.b_dec
        projected = centred @ d.W_enc
        pi_gate = projected + d.b_enc
        codes = (pi_gate > 0).to(x_in.dtype) * (projected * d.r_mag.exp() + d.b_mag).relu()
        return pi_gate, codes

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        return self._gate_and_codes(d, x_in)[1]

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        pi_gate, codes = self._gate_and_codes(d, x_in)
        x_hat = codes @ d.W_dec + d.b_dec
        gate = pi_gate.relu()
        sparsity = self.cfg.l1_coefficient * gate.sum(-1).mean()
        frozen = gate @ d.W_dec.detach() + d.b_dec.detach()
        aux = squared_error(x_in, frozen) / x_in.shape[0]
        return dense_terms(d, x_in, codes, x_hat, sparsity, ctx, extra=aux)
