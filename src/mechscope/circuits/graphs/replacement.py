"""The local replacement model of one prompt (Ameisen et al. 2025, "Circuit Tracing", section 2).

Each MLP's output becomes the features that write to it (its own layer's transcoder, or every earlier layer's latents
of a cross-layer transcoder) plus an error node (true MLP output minus the prediction), held constant; attention patterns and norm scales are frozen (detached). Downstream of the feature
outputs the model is then linear, so the gradient of any target (a feature's pre-activation, a logit) at a node's
output, dotted with that output, is the node's direct effect on the target. Everything runs through HookedModel's
hooks on the unmodified HF forward; layers without a transcoder keep their whole MLP output as their error node.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.circuits.graphs.transcoders import GraphError, MLPTranscoders, Transcoders

__all__ = ["FrozenRun", "GraphError", "PromptState", "Transcoders", "prompt_state"]


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

    def feature_writes(self, transcoders: MLPTranscoders, chosen: Tensor) -> Tensor:
        """a_s * decoder rows of the features `chosen` (all of one encoder layer) [n, n_out, d_model]: what each
        writes to the MLP outputs of transcoders.layers[i:i + n_out], i its layer's index."""
        i = transcoders.layers.index(int(self.features[chosen[0], 0]))
        rows = transcoders.decoder_rows(i, self.features[chosen, 2]).detach().float()
        return rows * self.activations[chosen, None, None]

    def encoder_vectors(self, transcoders: MLPTranscoders) -> Tensor:
        """Each active feature's encoder direction [n_features, d_model]: its pre-activation's input gradient."""
        rows = [transcoders.encoder_rows(transcoders.layers.index(layer),
                                         self.features[self.features[:, 0] == layer, 2])
                for layer in self.features[:, 0].unique(sorted=True).tolist()]
        d_model = self.errors.shape[-1]
        return torch.cat(rows).detach().float() if rows else torch.zeros(0, d_model)


def _final_norm_out(model) -> str:
    if model.family.final_norm is None:
        raise GraphError(f"{model.info.model_type} has no final norm before an unembedding; attribution graphs "
                         "need a causal language model")
    return "ln_final.hook_out"


def prompt_state(model, transcoders: MLPTranscoders, tokens: Tensor, zero_bos: bool = True) -> PromptState:
    """Run the prompt once, encode each transcoder's input and take the error nodes (zeroed at a leading special
    token when `zero_bos`, as circuit-tracer does: its huge norm would dominate every graph)."""
    transcoders.check(model)
    n_layers = model.n_layers
    names = ["hook_embed", _final_norm_out(model)]
    names += [transcoders.input_hook.format(layer=layer) for layer in transcoders.layers]
    names += [transcoders.output_hook.format(layer=layer) for layer in range(n_layers)]
    special = zero_bos and _is_special(model, tokens[0])
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens[None], names)
        errors = torch.stack([cache[transcoders.output_hook.format(layer=layer)][0].float()
                              for layer in range(n_layers)])
        inputs = [cache[transcoders.input_hook.format(layer=layer)][0].float() for layer in transcoders.layers]
        codes = [transcoders.encode(i, x_in) for i, x_in in enumerate(inputs)]
        if special:
            for found in codes:
                found[0] = 0
        for layer, prediction in zip(transcoders.layers, transcoders.predictions(codes, inputs)):
            errors[layer] -= prediction
        features, activations = [], []
        for layer, found in zip(transcoders.layers, codes):
            pos, latent = found.nonzero(as_tuple=True)
            features.append(torch.stack([torch.full_like(pos, layer), pos, latent], 1))
            activations.append(found[pos, latent])
        if special:
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

    def __init__(self, model, transcoders: MLPTranscoders, state: PromptState, copies: int):
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
