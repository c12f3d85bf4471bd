"""Norm hooks with TransformerLens meanings: `hook_scale` and `hook_normalized` (before weight and bias).

A LayerNorm computes `(x - mean) / scale * w + b`, an RMSNorm `x / scale * w` (Gemma: `* (1 + w)`), with
`scale = sqrt(mean((x - mean)^2) + eps)` ([batch, pos, 1]; no centring for RMSNorm). Both tensors are
computed only while hooked; the norm's own output stands unless a hook replaces one of them, in which
case the output is rebuilt from the replacements: a frozen `hook_scale` takes effect downstream.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

Callback = Callable[[Tensor], "Tensor | None"]


def _eps(norm: nn.Module) -> float:
    return norm.eps if hasattr(norm, "eps") else norm.variance_epsilon


def split(norm: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(centred input, scale [..., 1]) in float32: the norm's input is centred / scale before its weight."""
    x = x.float()
    centred = x - x.mean(-1, keepdim=True) if isinstance(norm, nn.LayerNorm) else x
    return centred, (centred.pow(2).mean(-1, keepdim=True) + _eps(norm)).sqrt()


def affine(norm: nn.Module, normalized: Tensor, offset: float) -> Tensor:
    """The norm's output from its normalised input: `normalized * (offset + weight) + bias`."""
    out = normalized.float()
    if getattr(norm, "weight", None) is not None:
        out = out * (offset + norm.weight.float())
    if getattr(norm, "bias", None) is not None:
        out = out + norm.bias.float()
    return out


class NormHooks:
    """The scale and normalized callbacks of one norm, run together (scale first) each time the norm runs."""

    def __init__(self, norm: nn.Module, offset: float):
        self.norm, self.offset = norm, offset
        self.callbacks: dict[str, list[Callback]] = {"scale": [], "normalized": []}

    def __call__(self, args: tuple, output: Tensor) -> Tensor | None:
        """The norm's output rebuilt from replaced scales / normalised inputs, or None when none was replaced."""
        x = args[0]
        centred, scale = split(self.norm, x)
        replaced = False
        for callback in self.callbacks["scale"]:
            new = callback(scale.to(x.dtype))
            if new is not None:
                scale, replaced = new.float(), True
        normalized = centred / scale
        for callback in self.callbacks["normalized"]:
            new = callback(normalized.to(x.dtype))
            if new is not None:
                normalized, replaced = new.float(), True
        return affine(self.norm, normalized, self.offset).to(output.dtype) if replaced else None
