"""What an attribution graph replaces the MLPs with: per-layer transcoders, or a cross-layer transcoder (CLT).

Both are encoders at `layers` whose latents write decoder rows to MLP outputs: a per-layer transcoder's latent of
layer i writes to layer i only, a CLT's to layers i, i+1, ... (Ameisen et al. 2025, "Circuit Tracing", section 2.1).
The graph code sees only this: `decoder_rows(i, latents)` [n, n_out, d_model] writing to `layers[i:i + n_out]`, so
a feature's direct effect on a target sums over every MLP output it writes to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from mechscope.dictionaries import CrossLayerTranscoder, Dictionary
from mechscope.errors import MechscopeError


class GraphError(MechscopeError):
    """Transcoders, prompts or targets that an attribution graph cannot be built from."""


class MLPTranscoders:
    """Encoders at `layers` (reading `input_hook`) whose latents predict `output_hook` of their own and, for a CLT,
    every later layer; `i` below indexes `layers`."""

    layers: list[int]
    input_hook: str
    output_hook: str
    kind: str  # "per-layer" | "cross-layer"

    def widths(self, i: int) -> tuple[int, int]:
        """(d_in, d_out) of the encoder at layers[i]."""
        raise NotImplementedError

    def normalization(self, i: int) -> str:
        """How the encoder at layers[i] normalises its input ("none" keeps pre-activations linear in it)."""
        raise NotImplementedError

    def encode(self, i: int, x_in: Tensor) -> Tensor:
        """Codes [pos, d_latent] of the encoder at layers[i] as at inference."""
        raise NotImplementedError

    def pre_activations(self, i: int, x_in: Tensor) -> Tensor:
        raise NotImplementedError

    def encoder_rows(self, i: int, latents: Tensor) -> Tensor:
        """Each latent's encoder direction [n, d_in]: its pre-activation's gradient with respect to the input."""
        raise NotImplementedError

    def decoder_rows(self, i: int, latents: Tensor | slice) -> Tensor:
        """Each latent's decoder rows [n, n_out, d_out], written to the MLP outputs of layers[i:i + n_out]."""
        raise NotImplementedError

    def output_bias(self, i: int) -> Tensor:
        """b_dec of the MLP output at layers[i] [d_out]."""
        raise NotImplementedError

    def skip(self, i: int, x_in: Tensor) -> Tensor | None:
        """The skip connection's part of the output at layers[i] (x_in @ W_skip), None without one."""
        return None

    def predictions(self, codes: Sequence[Tensor], inputs: Sequence[Tensor]) -> list[Tensor]:
        """The predicted MLP output [pos, d_out] at each of `layers` from every encoder's codes and inputs."""
        out = []
        for i, x_in in enumerate(inputs):
            skip = self.skip(i, x_in)
            out.append(self.output_bias(i).float().expand(len(x_in), -1) + (0 if skip is None else skip))
        for i, found in enumerate(codes):
            rows = self.decoder_rows(i, slice(None)).float()  # [d_latent, n_out, d_out]
            for offset in range(rows.shape[1]):
                out[i + offset] = out[i + offset] + found @ rows[:, offset]
        return out

    def check(self, model) -> None:
        """Raise GraphError unless every encoder fits its layer's hooks and is linear in its input."""
        d_model = model.info.d_model
        for i, layer in enumerate(self.layers):
            if not 0 <= layer < model.n_layers:
                raise GraphError(f"transcoder layer {layer} is outside the model's layers 0..{model.n_layers - 1}")
            for hook in (self.input_hook, self.output_hook):
                model.point(hook.format(layer=layer))
            if self.widths(i) != (d_model, d_model):
                d_in, d_out = self.widths(i)
                raise GraphError(f"transcoder for layer {layer} maps {d_in} -> {d_out}; the model's residual stream "
                                 f"has d_model={d_model}")
            if self.normalization(i) != "none":
                raise GraphError(f"transcoder for layer {layer} normalises its input ({self.normalization(i)}), so "
                                 "its pre-activations are not linear in it; fold the normalisation into the weights "
                                 "first")


@dataclass
class Transcoders(MLPTranscoders):
    """Per-layer transcoders: `dictionaries[i]` reads `input_hook` and writes `output_hook` at `layers[i]`."""

    dictionaries: Sequence[Dictionary]
    layers: Sequence[int]
    input_hook: str = "blocks.{layer}.hook_mlp_in"
    output_hook: str = "blocks.{layer}.hook_mlp_out"
    kind = "per-layer"

    def __post_init__(self):
        if len(self.dictionaries) != len(self.layers) or len(set(self.layers)) != len(self.layers):
            raise GraphError(f"need one transcoder per distinct layer, got {len(self.dictionaries)} transcoders for "
                             f"layers {list(self.layers)}")
        order = sorted(range(len(self.layers)), key=lambda i: self.layers[i])
        self.dictionaries = [self.dictionaries[i] for i in order]
        self.layers = [int(self.layers[i]) for i in order]

    def widths(self, i: int) -> tuple[int, int]:
        return self.dictionaries[i].d_in, self.dictionaries[i].W_dec.shape[1]

    def normalization(self, i: int) -> str:
        return self.dictionaries[i].cfg.normalize_activations

    def encode(self, i: int, x_in: Tensor) -> Tensor:
        return self.dictionaries[i].encode(x_in)

    def pre_activations(self, i: int, x_in: Tensor) -> Tensor:
        return self.dictionaries[i].pre_activations(x_in)

    def encoder_rows(self, i: int, latents: Tensor) -> Tensor:
        return self.dictionaries[i].W_enc[:, latents].T

    def decoder_rows(self, i: int, latents: Tensor | slice) -> Tensor:
        return self.dictionaries[i].W_dec[latents][:, None]

    def output_bias(self, i: int) -> Tensor:
        return self.dictionaries[i].b_dec

    def skip(self, i: int, x_in: Tensor) -> Tensor | None:
        w_skip = getattr(self.dictionaries[i], "W_skip", None)
        return None if w_skip is None else x_in @ w_skip


@dataclass
class CrossLayerTranscoders(MLPTranscoders):
    """A cross-layer transcoder: the latents read at `clt.layers[i]` write to the MLP output of every layer after."""

    clt: CrossLayerTranscoder
    kind = "cross-layer"

    def __post_init__(self):
        self.layers = list(self.clt.layers)
        self.input_hook, self.output_hook = self.clt.cfg.hook_in, self.clt.cfg.hook_out
        for hook in (self.input_hook, self.output_hook):
            if "{layer}" not in hook:
                raise GraphError(f"the CLT's hooks must name each layer as {{layer}}, got {hook!r}")
        self.clt.requires_grad_(False)

    def widths(self, i: int) -> tuple[int, int]:
        return self.clt.widths(i)

    def normalization(self, i: int) -> str:
        return "none"  # training's normalisation scales are folded into the saved weights

    def encode(self, i: int, x_in: Tensor) -> Tensor:
        return self.clt.encode_layer(i, x_in)

    def pre_activations(self, i: int, x_in: Tensor) -> Tensor:
        return x_in @ self.clt.W_enc[i] + self.clt.b_enc[i]

    def encoder_rows(self, i: int, latents: Tensor) -> Tensor:
        return self.clt.W_enc[i][:, latents].T

    def decoder_rows(self, i: int, latents: Tensor | slice) -> Tensor:
        return self.clt.W_dec[i][latents]

    def output_bias(self, i: int) -> Tensor:
        return self.clt.b_dec[i]

    def skip(self, i: int, x_in: Tensor) -> Tensor | None:
        return None if self.clt.W_skip is None else x_in @ self.clt.W_skip[i]

