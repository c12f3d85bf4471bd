"""Dictionary: the one sparse-dictionary module; its variant supplies activation and sparsity loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.sparse_codes import SparseCodes
from mechscope.errors import MechscopeError


class Dictionary(nn.Module):
    """x -> codes = variant(pre), pre = (x - b_dec) @ W_enc + b_enc; x_hat = codes @ W_dec + b_dec.

    Tensor names and shapes are SAELens's: W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_enc, b_dec [d_out],
    plus the variant's own (threshold for JumpReLU-style inference, r_mag / b_mag for Gated). A transcoder
    (d_out, hook_name_out) predicts another activation: y_hat = codes @ W_dec + b_dec + x @ W_skip, with the
    optional skip connection W_skip [d_in, d_out] and no b_dec subtracted from x.
    """

    def __init__(self, cfg: DictionaryConfig, device: str | torch.device = "cpu", initialise: bool = True):
        """`initialise=False` leaves W_enc and W_dec unset, for callers that fill every tensor (loaders, the
        gather of a sharded run): at 131k x 2304 latents the random draw is seconds and a 1 GiB temporary."""
        super().__init__()
        from mechscope.dictionaries.variants import make_variant

        self.cfg = cfg
        d_in, d_sae, d_out = cfg.d_in, self.d_sae, cfg.d_output
        # [d_in, d_sae] as SAELens names it, latent-major in memory: the sparse kernels read and write whole
        # latents (rows of W_enc.T), so neither the exact values nor W_enc's sparse gradient need a transpose
        self.W_enc = nn.Parameter(torch.empty(d_sae, d_in, device=device).T)
        self.b_enc = nn.Parameter(torch.zeros(d_sae, device=device))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_out, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_out, device=device))
        self.W_skip = nn.Parameter(torch.zeros(d_in, d_out, device=device)) if cfg.skip_connection else None
        self.variant = make_variant(cfg)
        self.variant.add_parameters(self)
        self.sparse_kernels = True  # False: the plain dense-autograd reference path
        if initialise:
            self.reset_parameters()

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    first_latent = 0  # index of this module's first latent in the dictionary (a latent shard's offset)

    @property
    def d_sae(self) -> int:
        """Latents this module holds (all of cfg.d_sae, or a latent shard's slice)."""
        return self.cfg.d_sae

    @property
    def d_out(self) -> int:
        return self.cfg.d_output

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Random unit decoder rows, encoder tied to their transpose (a transcoder's encoder has unit columns of
        its own, W_skip starts at zero); then the variant's own initialisation."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        w = self.random_rows(self.d_out, generator).to(self.W_dec.device)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec.copy_(w)
        if self.cfg.is_transcoder:
            w = self.random_rows(self.d_in, generator).to(self.W_dec.device)
            w /= w.norm(dim=1, keepdim=True)
        self.W_enc.copy_(w.T)
        self.b_enc.zero_()
        self.b_dec.zero_()
        if self.W_skip is not None:
            self.W_skip.zero_()
        self.variant.init_parameters(self)

    def random_rows(self, width: int, generator: torch.Generator | None) -> Tensor:
        """[d_sae, width] standard normal draws, one row per latent (a latent shard keeps its rows of the full draw)."""
        return torch.randn(self.d_sae, width, generator=generator)

    # ----- inference ---------------------------------------------------------------------------
    def input_norm(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """Per-token (mean, std) of x for dictionaries trained on layer-normed inputs (OpenAI's), else None."""
        if self.cfg.normalize_activations == "layer_norm":
            mu = x.mean(-1, keepdim=True)
            return mu, (x - mu).std(-1, keepdim=True)
        return None

    def preprocess(self, x: Tensor) -> Tensor:
        """Apply the input normalisation the dictionary was trained with."""
        norm = self.input_norm(x)
        return x if norm is None else (x - norm[0]) / (norm[1] + 1e-5)

    def input_centre(self) -> Tensor:
        """What the encoder subtracts from its input: b_dec when apply_b_dec_to_input, else zeros."""
        return self.b_dec if self.cfg.apply_b_dec_to_input else self.b_enc.new_zeros(self.d_in)

    def offset(self, x_in: Tensor) -> Tensor:
        """The output before any latent fires: b_dec, plus x_in @ W_skip with a skip connection."""
        return self.b_dec if self.W_skip is None else self.b_dec + x_in @ self.W_skip

    def centred(self, x_in: Tensor) -> Tensor:
        """The encoder's input: x_in - b_dec when apply_b_dec_to_input, else x_in."""
        return x_in - self.input_centre() if self.cfg.apply_b_dec_to_input else x_in

    def pre_activations(self, x_in: Tensor) -> Tensor:
        centred = self.centred(x_in)
        if centred.ndim == 2:  # fused bias add: the [batch, d_sae] add would cost a third of the matmul
            return torch.addmm(self.b_enc, centred, self.W_enc)
        return centred @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """Dense codes [..., d_sae] as used at inference."""
        self._check_input(x)
        x_in = self.preprocess(x)
        return self.variant.encode(self, x_in)

    def decode(self, codes: Tensor, input_norm: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x_hat from codes alone; pass `input_norm(x)` to undo a layer-norm dictionary's normalisation."""
        x_hat = self.latent_sum(codes @ self.W_dec) + self.b_dec
        if input_norm is not None:
            mu, std = input_norm
            x_hat = x_hat * std + mu
        return x_hat

    def output(self, codes: Tensor, x: Tensor) -> Tensor:
        """The reconstruction (a transcoder's prediction, skip connection included) from x's codes."""
        out = self.decode(codes, self.input_norm(x))
        return out if self.W_skip is None else out + x @ self.W_skip

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of x (in x's own scale); a transcoder's prediction of its output activation."""
        return self.output(self.encode(x), x)

    def _check_input(self, x: Tensor) -> None:
        if x.shape[-1] != self.d_in:
            raise MechscopeError(f"dictionary expects inputs with d_in={self.d_in} (hook {self.cfg.hook_name or '?'}), "
                                 f"got shape {tuple(x.shape)}")

    # ----- where a latent shard reaches the other shards (DictionaryShard); here every latent is local --------
    def latent_sum(self, partial: Tensor) -> Tensor:
        """The sum over every latent of what `partial` sums over this module's latents (differentiable)."""
        return partial

    def row_winners(self, values: Tensor, latents: Tensor, k: int) -> tuple[SparseCodes, Tensor]:
        """Each row's k largest candidates over every latent, as this module's pairs and their values; `values` and
        `latents` [batch, c] are this module's best c = min(k, d_sae) per row."""
        return SparseCodes.from_topk(latents, self.d_sae), values.reshape(-1)

    def batch_winners(self, values: Tensor, flat: Tensor, n: int, batch: int) -> tuple[SparseCodes, Tensor]:
        """The batch's n largest candidates over every latent, as this module's pairs (row-major) and their
        values; `values` and `flat` (row * d_sae + latent) are this module's n best (or all it has)."""
        chosen, order = flat.sort()
        return SparseCodes(chosen // self.d_sae, chosen % self.d_sae, batch, self.d_sae), values[order]

    # ----- training helpers --------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Project out the part of W_dec's gradient that would change row norms (unit-norm constraint), in place
        and without [d_sae, d_out] temporaries: g -= (<g, w> / ||w||^2) w per row."""
        if self.W_dec.grad is None:
            return
        squares = torch.linalg.vector_norm(self.W_dec, dim=1).square().clamp_min(1e-24)
        along = torch.einsum("ij,ij->i", self.W_dec.grad, self.W_dec) / squares
        self.W_dec.grad.addcmul_(self.W_dec, along.unsqueeze(1), value=-1.0)

    @torch.no_grad()
    def fold_activation_scale(self, scale: float, out_scale: float | None = None) -> None:
        """Make a dictionary trained on `scale * x` (predicting `out_scale * y`; default: scale) work on raw
        x and y (codes unchanged)."""
        out_scale = scale if out_scale is None else out_scale
        self.W_enc *= scale
        self.b_dec /= out_scale
        self.W_dec /= out_scale
        if self.W_skip is not None:
            self.W_skip *= scale / out_scale
