"""The local replacement model of one prompt (Ameisen et al. 2025, "Circuit Tracing", section 2).

Each MLP's output becomes its transcoder's features plus an error node (true MLP output minus the transcoder's
reconstruction), held constant; attention patterns and norm scales are frozen (detached). Downstream of the feature
outputs the model is then linear, so the gradient of any target (a feature's pre-activation, a logit) at a node's
output, dotted with that output, is the node's direct effect on the target. Everything runs through HookedModel's
hooks on the unmodified HF forward; layers without a transcoder keep their whole MLP output as their error node.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.dictionaries import Dictionary
from mechscope.errors import MechscopeError


class GraphError(MechscopeError):
    """Transcoders, prompts or targets that an attribution graph cannot be built from."""


@dataclass
class Transcoders:
    """Per-layer transcoders: `dictionaries[i]` reads `input_hook` and writes `output_hook` at `layers[i]`."""

    dictionaries: Sequence[Dictionary]
    layers: Sequence[int]
    input_hook: str = "blocks.{layer}.hook_mlp_in"
    output_hook: str = "blocks.{layer}.hook_mlp_out"

    def __post_init__(self):
        if len(self.dictionaries) != len(self.layers) or len(set(self.layers)) != len(self.layers):
            raise GraphError(f"need one transcoder per distinct layer, got {len(self.dictionaries)} transcoders for "
                             f"layers {list(self.layers)}")
        order = sorted(range(len(self.layers)), key=lambda i: self.layers[i])
        self.dictionaries = [self.dictionaries[i] for i in order]
        self.layers = [int(self.layers[i]) for i in order]

    def check(self, model) -> None:
        """Raise GraphError unless every transcoder fits its layer's hooks and is linear in its input."""
        for layer, transcoder in zip(self.layers, self.dictionaries):
            if not 0 <= layer < model.n_layers:
                raise GraphError(f"transcoder layer {layer} is outside the model's layers 0..{model.n_layers - 1}")
            for hook in (self.input_hook, self.output_hook):
                model.point(hook.format(layer=layer))
            d_out = transcoder.W_dec.shape[1]
            if (transcoder.d_in, d_out) != (model.info.d_model, model.info.d_model):
                raise GraphError(f"transcoder for layer {layer} maps {transcoder.d_in} -> {d_out}; the model's "
                                 f"residual stream has d_model={model.info.d_model}")
            if transcoder.cfg.normalize_activations != "none":
                raise GraphError(f"transcoder for layer {layer} normalises its input "
                                 f"({transcoder.cfg.normalize_activations}), so its pre-activations are not linear "
                                 "in it; fold the normalisation into the weights first")

    def skip(self, index: int, x_in: Tensor) -> Tensor | None:
        """The skip connection's output x_in @ W_skip [.., d_out], or None for transcoders without one."""
        w_skip = getattr(self.dictionaries[index], "W_skip", None)
        return None if w_skip is None else x_in @ w_skip


@dataclass
class PromptState:
    """What the unmodified forward pass of one prompt gives the replacement model (no autograd)."""

    tokens: Tensor  # [pos]
    logits: Tensor  # [pos, vocab]
    features: Tensor  # [n_features, 3] (layer, pos, latent) of every active feature, sorted
    activations: Tensor  # [n_features]
    errors: Tensor  # [n_layers, pos, d_model]: MLP output minus the transcoder's reconstruction
    embeddings: Tensor  # [pos, d_model]: hook_embed's output
    final_residual: Tensor  # [pos, d_model]: the final norm's output (what the unembedding reads)

    def decoder_vectors(self, transcoders: Transcoders) -> Tensor:
        """a_s * W_dec[s] for every active feature [n_features, d_model]: each feature's output."""
        return self._rows(transcoders, lambda tc, latents: tc.W_dec[latents]) * self.activations[:, None]

    def encoder_vectors(self, transcoders: Transcoders) -> Tensor:
        """W_enc[:, s] for every active feature [n_features, d_model]: its pre-activation's input gradient."""
        return self._rows(transcoders, lambda tc, latents: tc.W_enc[:, latents].T)

    def _rows(self, transcoders: Transcoders, pick) -> Tensor:
        index = {layer: i for i, layer in enumerate(transcoders.layers)}
        rows = [pick(transcoders.dictionaries[index[layer]], self.features[self.features[:, 0] == layer, 2])
                for layer in self.features[:, 0].unique(sorted=True).tolist()]
        d_model = self.errors.shape[-1]
        return torch.cat(rows).detach().float() if rows else torch.zeros(0, d_model)


def _final_norm_out(model) -> str:
    if model.family.final_norm is None:
        raise GraphError(f"{model.info.model_type} has no final norm before an unembedding; attribution graphs "
                         "need a causal language model")
    return "ln_final.hook_out"


def prompt_state(model, transcoders: Transcoders, tokens: Tensor, zero_bos: bool = True) -> PromptState:
    """Run the prompt once, encode each transcoder's input and take the error nodes (zeroed at a leading special
    token when `zero_bos`, as circuit-tracer does: its huge norm would dominate every graph)."""
    transcoders.check(model)
    n_layers = model.n_layers
    names = ["hook_embed", _final_norm_out(model)]
    names += [transcoders.input_hook.format(layer=layer) for layer in transcoders.layers]
    names += [transcoders.output_hook.format(layer=layer) for layer in range(n_layers)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens[None], names)
        errors = torch.stack([cache[transcoders.output_hook.format(layer=layer)][0].float()
                              for layer in range(n_layers)])
        features, activations = [], []
        for i, (layer, transcoder) in enumerate(zip(transcoders.layers, transcoders.dictionaries)):
            x_in = cache[transcoders.input_hook.format(layer=layer)][0].float()
            codes = transcoder.encode(x_in)
            if zero_bos and _is_special(model, tokens[0]):
                codes[0] = 0
            reconstruction = transcoder.decode(codes)
            skip = transcoders.skip(i, x_in)
            errors[layer] -= reconstruction if skip is None else reconstruction + skip
            pos, latent = codes.nonzero(as_tuple=True)
            features.append(torch.stack([torch.full_like(pos, layer), pos, latent], 1))
            activations.append(codes[pos, latent])
        if zero_bos and _is_special(model, tokens[0]):
            errors[:, 0] = 0
    return PromptState(tokens=tokens, logits=logits[0].float(),
                       features=torch.cat(features) if features else torch.zeros(0, 3, dtype=torch.long),
                       activations=torch.cat(activations) if activations else torch.zeros(0),
                       errors=errors, embeddings=cache["hook_embed"][0].float(),
                       final_residual=cache[_final_norm_out(model)][0].float())


def _is_special(model, token: Tensor) -> bool:
    tokenizer = model.tokenizer
    return tokenizer is not None and int(token) in set(tokenizer.all_special_ids)


@contextmanager
def _parameters_frozen(model):
    """Parameters out of autograd while the block runs (no weight gradients, no tensors saved for them)."""
    params = [p for p in model.hf.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class FrozenRun:
    """One forward pass of `copies` copies of the prompt through the local replacement model, kept for backward
    passes: each copy carries one target's injected gradient."""

    def __init__(self, model, transcoders: Transcoders, state: PromptState, copies: int):
        self.model, self.transcoders, self.state, self.copies = model, transcoders, state, copies
        self.inputs: dict[int, Tensor] = {}  # transcoder layer -> its input tensor [copies, pos, d_model]
        self.outputs: dict[int, Tensor] = {}  # every layer -> its MLP output leaf (features + error) [copies, pos, d]
        self.embed: Tensor | None = None
        self.final: Tensor | None = None
        index = {layer: i for i, layer in enumerate(transcoders.layers)}
        fns = [("hook_embed", self._embed), (_final_norm_out(model), self._final)]
        fns += [(name, self._freeze) for name in model.hook_names()
                if model.point(name).kind in ("pattern", "norm_scale")]
        fns += [(transcoders.input_hook.format(layer=layer), self._input(layer)) for layer in transcoders.layers]
        fns += [(transcoders.output_hook.format(layer=layer), self._output(layer, index.get(layer)))
                for layer in range(model.n_layers)]
        with _parameters_frozen(model), torch.enable_grad(), model.hooks(fns):
            model(state.tokens[None].expand(copies, -1))

    @staticmethod
    def _freeze(act: Tensor, _name: str) -> Tensor:
        return act.detach()

    def _embed(self, act: Tensor, _name: str) -> Tensor:
        self.embed = act.detach().requires_grad_()
        return self.embed

    def _final(self, act: Tensor, _name: str) -> Tensor:
        self.final = act
        return act

    def _input(self, layer: int):
        def keep(act: Tensor, _name: str) -> Tensor:
            self.inputs[layer] = act
            return act
        return keep

    def _output(self, layer: int, index: int | None):
        def replace(act: Tensor, _name: str) -> Tensor:
            skip = None if index is None else self.transcoders.skip(index, self.inputs[layer])
            frozen = act.detach() if skip is None else (act - skip).detach()
            self.outputs[layer] = frozen.requires_grad_()
            return self.outputs[layer] if skip is None else self.outputs[layer] + skip
        return replace

    def gradients(self, injections: dict[int | str, Tensor]) -> tuple[Tensor, dict[int, Tensor]]:
        """Gradients at the embedding [copies, pos, d] and at each layer's MLP output leaf of the sum of the
        injected targets: `injections` maps a transcoder layer (its input) or "final" to [copies, pos, d]."""
        outputs = [self.final if key == "final" else self.inputs[key] for key in injections]
        leaves = [self.embed, *self.outputs.values()]
        grads = torch.autograd.grad(outputs, leaves, [g.to(o.dtype) for g, o in zip(injections.values(), outputs)],
                                    retain_graph=True, allow_unused=True)
        zero = torch.zeros_like(self.embed, dtype=torch.float32)
        grads = [zero if g is None else g.float() for g in grads]
        return grads[0], dict(zip(self.outputs, grads[1:]))
