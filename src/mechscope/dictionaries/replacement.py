"""MLP replacement by transcoders: the hooks that swap each MLP's output for a transcoder's prediction, and the
checks that a set of transcoders fits a model. Per-layer transcoder sets and cross-layer transcoders share both."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from mechscope.errors import MechscopeError


class MLPReplacement(Protocol):
    """Transcoders over some MLP layers: layer i reads `input_hooks[i]` and writes `output_hooks[i]`."""

    layers: list[int]

    @property
    def input_hooks(self) -> list[str]: ...

    @property
    def output_hooks(self) -> list[str]: ...

    def widths(self, i: int) -> tuple[int, int]:
        """(d_in, d_out) of layer position i."""

    def encode_layer(self, i: int, x: Tensor) -> Tensor:
        """Codes [n, d_latent] of layer position i from its input activations [n, d_in]."""

    def decode_layer(self, i: int, codes: list[Tensor], x: Tensor) -> Tensor:
        """Prediction [n, d_out] of output i from the codes of positions 0..i and input i."""


def replacement_hooks(replacement: MLPReplacement, error_term: bool = False) -> list[tuple[str, object]]:
    """Hook functions (for `model.hooks`) replacing every output hook by the transcoders' prediction.

    Each input hook encodes its activation; each output hook (which fires later in the same pass) decodes from
    the codes seen so far. With `error_term`, the output keeps its true value with the error detached, so
    gradients flow through the latents (Marks et al. 2024)."""
    seen: dict[int, tuple[Tensor, Tensor]] = {}  # layer position -> (input [n, d_in], codes [n, d_latent])
    hooks = []
    for i, (hook_in, hook_out) in enumerate(zip(replacement.input_hooks, replacement.output_hooks)):
        def read(act: Tensor, name: str, i=i) -> None:
            flat = act.reshape(-1, act.shape[-1]).float()
            seen[i] = (flat, replacement.encode_layer(i, flat))

        def write(act: Tensor, name: str, i=i) -> Tensor:
            prediction = replacement.decode_layer(i, [seen[j][1] for j in range(i + 1)], seen[i][0])
            prediction = prediction.reshape(act.shape).to(act.dtype)
            return prediction + (act - prediction).detach() if error_term else prediction
        hooks += [(hook_in, read), (hook_out, write)]
    return hooks


def check_replacement(replacement: MLPReplacement, model, every_layer: bool = True) -> None:
    """Raise a MechscopeError naming the mismatch when the transcoders' hooks, widths or layers do not fit
    `model` (with `every_layer`, one transcoder per layer of the model, in order)."""
    n_layers = model.info.n_layers
    if every_layer and list(replacement.layers) != list(range(n_layers)):
        raise MechscopeError(f"{model.info.name} has {n_layers} layers; the transcoders cover layers "
                             f"{list(replacement.layers)} (expected one per layer, 0..{n_layers - 1})")
    for i, layer in enumerate(replacement.layers):
        d_in, d_out = replacement.widths(i)
        for hook, width, side in ((replacement.input_hooks[i], d_in, "input"),
                                  (replacement.output_hooks[i], d_out, "output")):
            model.point(hook)  # unknown names raise HookNameError listing close ones
            if model.layer_of(hook) != layer:
                raise MechscopeError(f"the transcoder for layer {layer} {side}s {hook}, which belongs to layer "
                                     f"{model.layer_of(hook)} of {model.info.name}")
            given = math.prod(model.hook_shape(hook)[2:])
            if given != width:
                raise MechscopeError(f"{hook} has width {given} in {model.info.name}; the layer-{layer} transcoder's "
                                     f"{side} width is {width}")


@torch.no_grad()
def clean_activations(model, replacement: MLPReplacement, ids: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """The model's own inputs and outputs [n, d] at every transcoder's hooks for a batch of token ids."""
    names = list(dict.fromkeys(replacement.input_hooks + replacement.output_hooks))
    _, cache = model.run_with_cache(ids, names=names, stop_at_layer="auto")
    flat = {k: v.reshape(-1, v.shape[-1]).float() for k, v in cache.items()}
    return [flat[h] for h in replacement.input_hooks], [flat[h] for h in replacement.output_hooks]
