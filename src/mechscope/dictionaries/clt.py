"""Cross-layer transcoder (Ameisen et al. 2025, "Circuit Tracing"): one encoder per layer; the latents read at
layer i write to the MLP output of every layer j >= i.

    codes_i = act(x_i @ W_enc[i] + b_enc[i]),   y_j = sum_{i <= j} codes_i @ W_dec[i][:, j - i] + b_dec[j]

Training activations: "jumprelu" (sparsity lambda * sum tanh(c * |codes| * ||W_dec row||), the decoder norm taken
over every layer a latent writes to, with straight-through threshold gradients) or "topk" (the k largest
pre-activations of a token over all layers jointly, decoder rows kept at unit norm). Inference always uses a
per-latent threshold, so the codes of layer i never depend on later layers: a TopK CLT learns its thresholds as
BatchTopK does (an EMA of the smallest selected value). Files: circuit-tracer's CLT layout (formats/circuit_tracer).
Latent-sharded training (`clt_shards.CLTShard`) reaches other shards' latents through `latent_sum`, `plus_latents`,
`top_k_mask` and `largest`, which are plain local operations here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from mechscope.dictionaries.replacement import check_replacement, replacement_hooks
from mechscope.dictionaries.variants.jumprelu import jumprelu
from mechscope.errors import MechscopeError

ACTIVATIONS = ("jumprelu", "topk")
# float [tokens, n_layers, d_latent] tensors a training step holds at its peak (benchmarks/clt_memory.py: the peak's
# growth with the batch in train_clt's own loop)
CLT_STEP_ACTIVATIONS = {"jumprelu": 7.75, "topk": 6.25}


@dataclass
class CLTConfig:
    """Shape, sparsity and hooks of a cross-layer transcoder; `{layer}` in the hooks is each layer's index."""

    n_layers: int
    d_in: int
    d_latent: int  # latents per layer
    d_out: int | None = None  # None = d_in
    activation: str = "jumprelu"
    k: int = 32  # topk: active latents per token over all layers together
    sparsity_coefficient: float = 0.02  # jumprelu: lambda of the tanh penalty
    tanh_scale: float = 4.0  # jumprelu: c in tanh(c * |a| * ||W_dec||)
    jumprelu_bandwidth: float = 0.1
    jumprelu_init_threshold: float = 0.5
    hook_in: str = "blocks.{layer}.ln2.hook_normalized"
    hook_out: str = "blocks.{layer}.hook_mlp_out"
    first_layer: int = 0  # layers first_layer .. first_layer + n_layers - 1
    model_name: str = ""
    skip_connection: bool = False  # W_skip[l] [d_in, d_out]: y_l += x_l @ W_skip[l] (Gemma Scope 2's affine CLTs)

    def __post_init__(self):
        if min(self.n_layers, self.d_in, self.d_latent, self.d_output) < 1:
            raise MechscopeError(f"n_layers, d_in, d_latent and d_out must be positive, got {self.n_layers}, "
                                 f"{self.d_in}, {self.d_latent}, {self.d_out}")
        if self.activation not in ACTIVATIONS:
            raise MechscopeError(f"CLT activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.activation == "topk" and not 0 < self.k <= self.n_layers * self.d_latent:
            raise MechscopeError(f"k must be in 1..n_layers * d_latent = {self.n_layers * self.d_latent}, got {self.k}")

    @property
    def d_output(self) -> int:
        return self.d_in if self.d_out is None else self.d_out

    @property
    def layers(self) -> list[int]:
        return list(range(self.first_layer, self.first_layer + self.n_layers))

    @property
    def input_hooks(self) -> list[str]:
        return [self.hook_in.format(layer=layer) for layer in self.layers]

    @property
    def output_hooks(self) -> list[str]:
        return [self.hook_out.format(layer=layer) for layer in self.layers]

    def run_name(self) -> str:
        knob = f"k{self.k}" if self.activation == "topk" else f"lambda-{self.sparsity_coefficient:g}"
        return f"clt-{self.activation}_{self.d_latent}x{self.n_layers}_{knob}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CLTConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class CrossLayerTranscoder(nn.Module):
    """W_enc [n_layers, d_in, d_latent], b_enc and threshold [n_layers, d_latent], W_dec[i] [d_latent,
    n_layers - i, d_out], b_dec [n_layers, d_out], optionally W_skip [n_layers, d_in, d_out]."""

    def __init__(self, cfg: CLTConfig, device: str | torch.device = "cpu", initialise: bool = True):
        """`initialise=False` leaves W_enc and W_dec unset, for callers that fill every tensor (the loaders, the
        gather of a sharded run)."""
        super().__init__()
        self.cfg = cfg
        n, d_in, f, d_out = cfg.n_layers, cfg.d_in, self.d_latent, cfg.d_output
        self.W_enc = nn.Parameter(torch.empty(n, d_in, f, device=device))
        self.b_enc = nn.Parameter(torch.zeros(n, f, device=device))
        self.W_dec = nn.ParameterList([nn.Parameter(torch.empty(f, n - i, d_out, device=device)) for i in range(n)])
        self.b_dec = nn.Parameter(torch.zeros(n, d_out, device=device))
        self.log_threshold = nn.Parameter(torch.zeros(n, f, device=device))
        self.register_buffer("threshold", torch.zeros(n, f, device=device))
        self.W_skip = nn.Parameter(torch.zeros(n, d_in, d_out, device=device)) if cfg.skip_connection else None
        if initialise:
            self.reset_parameters()

    @property
    def d_latent(self) -> int:
        """Latents per layer this module holds (all of cfg.d_latent, or a latent shard's slice)."""
        return self.cfg.d_latent

    @property
    def layers(self) -> list[int]:
        return self.cfg.layers

    @property
    def input_hooks(self) -> list[str]:
        return self.cfg.input_hooks

    @property
    def output_hooks(self) -> list[str]:
        return self.cfg.output_hooks

    def widths(self, i: int) -> tuple[int, int]:
        return self.cfg.d_in, self.cfg.d_output

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Unit-norm random encoder columns; decoder rows of unit norm over all the layers they write to."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        device = self.W_enc.device
        w = self.random_latents(self.W_enc.shape, 2, generator)
        self.W_enc.copy_((w / w.norm(dim=1, keepdim=True)).to(device))
        for W in self.W_dec:
            W.copy_(self.random_latents(W.shape, 0, generator).to(device))
        self.normalize_decoder()
        self.b_enc.zero_()
        self.b_dec.zero_()
        if self.W_skip is not None:
            self.W_skip.zero_()
        init = math.log(self.cfg.jumprelu_init_threshold) if self.cfg.activation == "jumprelu" else -30.0
        self.log_threshold.fill_(init)
        self.threshold.copy_(self.log_threshold.exp())

    def random_latents(self, shape: torch.Size, dim: int, generator: torch.Generator | None) -> Tensor:
        """Standard normal draws of `shape`, whose `dim` runs over latents (a latent shard keeps its slice of the
        full draw)."""
        return torch.randn(shape, generator=generator)

    def decoder_norms(self) -> Tensor:
        """[n_layers, d_latent]: each latent's decoder norm over every layer it writes to."""
        return torch.stack([W.pow(2).sum((1, 2)).sqrt() for W in self.W_dec])

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        for W, norm in zip(self.W_dec, self.decoder_norms()):
            W /= norm.clamp_min(1e-12)[:, None, None]

    # ----- inference ---------------------------------------------------------------------------
    def pre_activations(self, xs: Tensor) -> Tensor:
        """xs [n_tokens, n_layers, d_in] -> [n_tokens, n_layers, d_latent]."""
        return torch.einsum("bld,ldf->blf", xs, self.W_enc) + self.b_enc

    def encode(self, xs: Tensor) -> Tensor:
        """Codes [n_tokens, n_layers, d_latent] (thresholded, as at inference)."""
        pre = self.pre_activations(xs)
        return pre * (pre > self.threshold)

    def decode(self, codes: Tensor, xs: Tensor | None = None) -> Tensor:
        """Predictions [n_tokens, n_layers, d_out] of every layer's MLP output (the skip term needs the inputs xs)."""
        out = self.plus_latents(self.b_dec.expand(codes.shape[0], -1, -1).clone(), codes)
        if self.W_skip is not None:
            if xs is None:
                raise MechscopeError("this CLT has a skip connection: decode(codes, xs) needs the inputs xs")
            out = out + torch.einsum("bld,lde->ble", xs, self.W_skip)
        return out

    def forward(self, xs: Tensor) -> Tensor:
        return self.decode(self.encode(xs), xs)

    # ----- the MLPReplacement protocol (one layer at a time, as a forward pass reaches it) -------
    def encode_layer(self, i: int, x: Tensor) -> Tensor:
        pre = x @ self.W_enc[i] + self.b_enc[i]
        return pre * (pre > self.threshold[i])

    def decode_layer(self, j: int, codes: list[Tensor], x: Tensor) -> Tensor:
        out = self.b_dec[j] + sum(codes[i] @ self.W_dec[i][:, j - i] for i in range(j + 1))
        return out if self.W_skip is None else out + x @ self.W_skip[j]

    def replacement_hooks(self, error_term: bool = False) -> list:
        return replacement_hooks(self, error_term)

    def check_against(self, model, every_layer: bool = True) -> None:
        check_replacement(self, model, every_layer)

    # ----- training ----------------------------------------------------------------------------
    def loss(self, xs: Tensor, ys: Tensor, variance: float, sparsity_scale: float = 1.0) -> dict[str, Tensor]:
        """Squared error summed over output layers (over `variance`, the targets' summed variance, for TopK),
        plus the activation's sparsity term."""
        pre = self.pre_activations(xs)
        if self.cfg.activation == "topk":
            chosen = self.top_k_mask(pre.detach().reshape(pre.shape[0], -1), self.cfg.k).reshape(pre.shape)
            codes = torch.where(chosen, pre.relu(), 0.0)
            sparsity = torch.zeros((), device=xs.device)
        else:
            codes = jumprelu(pre, self.log_threshold.exp(), self.cfg.jumprelu_bandwidth)
            chosen = None
            weighted = codes.abs() * self.decoder_norms()
            penalty = torch.tanh(self.cfg.tanh_scale * weighted).sum((1, 2)).mean()
            sparsity = self.cfg.sparsity_coefficient * self.latent_sum(penalty)
        y_hat = self.decode(codes, xs)
        error = (y_hat - ys).pow(2).sum() / xs.shape[0]
        recon = error / variance if self.cfg.activation == "topk" else error
        active = codes > 0
        per_layer = (y_hat - ys).detach().pow(2).sum((0, 2)) / (ys - ys.mean(0)).pow(2).sum((0, 2)).clamp_min(1e-12)
        return {"total": recon + sparsity_scale * sparsity, "recon": recon.detach(), "sparsity": sparsity.detach(),
                "l0": self.latent_sum(active.sum((1, 2)).float().mean()), "fvu": per_layer.mean(),
                "fvu_per_layer": per_layer, "fired": active.any(0), "chosen": chosen, "pre": pre.detach()}

    @torch.no_grad()
    def after_step(self, terms: dict[str, Tensor]) -> None:
        """JumpReLU: threshold = exp(log_threshold). TopK: per layer, an EMA of the batch-level cut that lets as
        many (token, latent) pairs fire as TopK chose in that layer (BatchTopK's calibration). The smallest selected
        value, used before, let ~4x k latents fire at inference: one token's low pick sets every token's bar."""
        if self.cfg.activation == "jumprelu":
            self.threshold.copy_(self.log_threshold.exp())
            return
        chosen, pre = terms["chosen"], terms["pre"]
        counts = self.latent_sum(chosen.sum((0, 2)))  # [n_layers]
        deepest = max(int(counts.max()), 1)  # only the largest `deepest` values of a layer are ever needed
        ranked = self.largest(pre.transpose(0, 1).reshape(pre.shape[1], -1), deepest)
        smallest = ranked.gather(1, (counts - 1).clamp_min(0)[:, None])[:, 0].clamp_min(0)
        seen = counts > 0
        current = self.threshold[:, 0]
        new = torch.where(current <= 1e-12, smallest, 0.99 * current + 0.01 * smallest)
        self.threshold.copy_(torch.where(seen, new, current)[:, None].expand_as(self.threshold))

    # ----- where a latent shard reaches the other shards (clt_shards.CLTShard); here every latent is local -------
    def latent_sum(self, partial: Tensor) -> Tensor:
        """The sum over every latent of what `partial` sums over this module's latents (differentiable)."""
        return partial

    def plus_latents(self, out: Tensor, codes: Tensor) -> Tensor:
        """out [tokens, n_layers, d_out] plus every latent's writes (codes_i @ W_dec[i] into layers i..), in place."""
        for i, W in enumerate(self.W_dec):
            out[:, i:] += torch.einsum("bf,fld->bld", codes[:, i], W)
        return out

    def top_k_mask(self, flat: Tensor, k: int) -> Tensor:
        """[tokens, n_layers * d_latent] bool: each token's k largest of `flat` over every layer's latents."""
        return torch.zeros_like(flat, dtype=torch.bool).scatter(-1, flat.topk(k, dim=-1, sorted=False).indices, True)

    def largest(self, values: Tensor, count: int) -> Tensor:
        """[rows, count] each row's `count` largest over every latent, in descending order."""
        return values.topk(count, dim=1).values

    @torch.no_grad()
    def fold_scales(self, in_scales: Tensor, out_scales: Tensor) -> None:
        """Make a CLT trained on in_scales[l] * x_l predicting out_scales[l] * y_l work on raw activations."""
        self.W_enc *= in_scales[:, None, None].to(self.W_enc.device)
        out = out_scales.to(self.b_dec.device)
        if self.W_skip is not None:
            self.W_skip *= (in_scales.to(out.device) / out)[:, None, None]
        self.b_dec /= out[:, None]
        for i, W in enumerate(self.W_dec):
            W /= out[i:][None, :, None]

    # ----- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from mechscope.dictionaries.formats import circuit_tracer

        return circuit_tracer.save_clt(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "CrossLayerTranscoder":
        """From circuit-tracer's CLT layout or a Gemma Scope 2 `clt/...` folder."""
        from mechscope.dictionaries.formats import circuit_tracer, gemmascope2

        if gemmascope2.holds_layers(path):
            return gemmascope2.load_clt(path).to(device)
        return circuit_tracer.load_clt(path).to(device)

    @staticmethod
    def holds(path: str | Path) -> bool:
        from mechscope.dictionaries.formats import circuit_tracer, gemmascope2

        return circuit_tracer.holds_clt(path) or (gemmascope2.holds_layers(path)
                                                  and gemmascope2.multilayer_kind(path) == "clt")
