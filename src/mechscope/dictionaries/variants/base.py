"""The variant interface and the loss pieces variants share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mechscope.dictionaries.config import DictionaryConfig


@dataclass
class StepContext:
    """What the trainer tells a variant about the current step."""

    variance: float  # fixed per-token total variance of the (normalised) inputs: E||x - E x||^2
    sparsity_scale: float = 1.0  # warm-up factor on the sparsity coefficient
    dead_mask: Tensor | None = None  # [d_sae] latents that have not fired for too long
    target: Tensor | None = None  # [batch, d_out] what a transcoder predicts; None: the input itself (an SAE)

    def target_for(self, x_in: Tensor) -> Tensor:
        """What the reconstruction is scored against: the transcoder's target, else x_in."""
        return x_in if self.target is None else self.target


class Variant:
    """Everything that differs by architecture: activation, loss, initialisation, resampling, its config
    fields and their checks, its run label and its sweep knob. It reads its config and never writes it."""

    unit_norm_decoder = True  # keep decoder rows at unit norm during training
    sparse = False  # its codes are few per token: training runs the sparse kernels
    hyperparameters: tuple[str, ...] = ()  # the DictionaryConfig fields it reads (its `train --arch` flags)
    sweep_axis = "l0"  # which sweep list sets its sparsity: "l0" (target L0 or k) or "l1" (a coefficient)
    saved_tensors: tuple[str, ...] = ()  # its parameters or buffers that files store, beside W_enc/b_enc/W_dec/b_dec
    latent_parameters: tuple[str, ...] = ()  # its trained per-latent [d_sae] parameters (split over latent shards)
    latent_buffers: tuple[str, ...] = ()  # its untrained per-latent [d_sae] buffers (split over latent shards)
    latent_shardable = False  # its step reaches other latents only through the dictionary's latent_sum/*_winners
    step_activations = 1.0  # float [batch, d_sae] tensors its loss and backward hold at their peak (measured)

    def __init__(self, cfg: DictionaryConfig):
        self.cfg = cfg

    # ----- config: defaults, checks, run label, sweep knob -------------------------------------
    @classmethod
    def config_defaults(cls, cfg: DictionaryConfig) -> dict:
        """Field values the config takes for this variant (applied once, when the config is built)."""
        return {}

    @classmethod
    def validate_config(cls, cfg: DictionaryConfig) -> None:
        """Raise a MechscopeError naming expected and given for settings this variant cannot use."""

    @classmethod
    def sweep_overrides(cls, value: float) -> dict:
        """Config fields that put this variant at one point of a sweep's `sweep_axis` list."""
        raise NotImplementedError

    def knob_label(self) -> str:
        """The sparsity setting as it appears in run names, e.g. "k32" or "l1-5"."""
        raise NotImplementedError

    def run_name(self) -> str:
        """Directory name of a training run: architecture, width and sparsity knob."""
        return f"{self.cfg.architecture}_{self.cfg.d_sae}_{self.knob_label()}"

    # ----- parameters and initialisation --------------------------------------------------------
    def add_parameters(self, d) -> None:
        """Register parameters or buffers beyond W_enc, b_enc, W_dec, b_dec."""

    def init_parameters(self, d) -> None:
        """Initialise them (called after the shared initialisation)."""

    @torch.no_grad()
    def init_from_data(self, d, b_dec: Tensor, sample: Tensor, target: Tensor | None = None) -> None:
        """Data-dependent initialisation before training: b_dec from the first tokens (of the target, for a
        transcoder whose first inputs are `sample` and outputs `target`)."""
        d.b_dec.copy_(b_dec.to(d.b_dec.device))

    def after_load(self, d) -> None:
        """Derive training-only state from tensors just loaded from a file."""

    # ----- inference and training ---------------------------------------------------------------
    def decoder_norms(self, d) -> Tensor:
        """[d_sae] the norm that weights each latent's sparsity penalty: its decoder row's norm."""
        return d.W_dec.norm(dim=1)

    def activate(self, d, x_in: Tensor, pre: Tensor) -> Tensor:
        """Dense inference codes from pre-activations."""
        raise NotImplementedError

    def encode(self, d, x_in: Tensor) -> Tensor:
        """Dense inference codes [..., d_sae] of (preprocessed) inputs."""
        return self.activate(d, x_in, d.pre_activations(x_in))

    def loss(self, d, x_in: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """Training loss terms; must include total, recon, l0 and fired ([d_sae] bool)."""
        raise NotImplementedError

    def after_step(self, d, terms: dict[str, Tensor]) -> None:
        """Update running state (e.g. an inference threshold) after an optimiser step."""

    def resample(self, d, optimizer: torch.optim.Optimizer, x: Tensor, dead: Tensor, step: int) -> int:
        """Revive dead latents at a resampling step; returns how many (0: this variant does not resample)."""
        return 0


def squared_error(x: Tensor, x_hat: Tensor) -> Tensor:
    """Sum over the batch of ||x - x_hat||^2."""
    return (x_hat - x).pow(2).sum()


def batch_fvu(x: Tensor, x_hat: Tensor) -> Tensor:
    """Fraction of variance unexplained in this batch, variance about the batch mean (for logging)."""
    return squared_error(x, x_hat).detach() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def dense_terms(d, target: Tensor, codes: Tensor, x_hat: Tensor, sparsity: Tensor, ctx: StepContext,
                extra: Tensor | None = None) -> dict[str, Tensor]:
    """Loss terms of the L1-style variants: recon = mean_b ||x - x_hat||^2 (the papers' form)."""
    recon = squared_error(target, x_hat) / target.shape[0]
    total = recon + ctx.sparsity_scale * sparsity + (extra if extra is not None else 0)
    active = codes > 0
    return {"total": total, "recon": recon.detach(), "sparsity": sparsity.detach(),
            "aux": (extra.detach() if extra is not None else torch.zeros(())),
            "l0": d.latent_sum(active.sum(-1).float().mean()), "fvu": batch_fvu(target, x_hat), "fired": active.any(0)}
