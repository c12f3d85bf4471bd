"""What an intervention edits: one coordinate of a hook's activation, read and written back.

A `Direction` is the projection on a unit vector in the residual stream or in one head's slice of a
per-head hook (hook_z, hook_result); a `Latent` is one latent of a dictionary bound to the hook, edited
in its latent space with the dictionary's error term kept. Both turn a new coordinate into a new
activation that differs from the old one only along that coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.dictionaries.binding import BoundDictionary
from mechscope.errors import SteeringError


def _masked(new: Tensor, old: Tensor, mask: Tensor) -> Tensor:
    """`new` where `mask` [batch, pos] holds, `old` elsewhere ([batch, pos] each)."""
    return torch.where(mask.to(new.device), new, old)


@dataclass(frozen=True)
class Direction:
    """A direction `vector` [d] of a hook's last dimension, or of head `head`'s slice on a per-head hook."""

    vector: Tensor
    head: int | None = None

    def __post_init__(self):
        if self.vector.ndim != 1 or not torch.isfinite(self.vector).all() or float(self.vector.norm()) == 0:
            raise SteeringError(f"a direction must be a finite, non-zero vector [d]; got shape "
                                f"{tuple(self.vector.shape)} with norm {float(self.vector.norm())}")

    @property
    def scale(self) -> float:
        """The vector's length: one unit of an intervention's value moves the coordinate by this much."""
        return float(self.vector.norm())

    def _slice(self, act: Tensor, name: str) -> Tensor:
        if act.ndim == 4:
            if self.head is None:
                raise SteeringError(f"{name} is per head [batch, pos, head, d]; give the Direction a head")
            if not 0 <= self.head < act.shape[2]:
                raise SteeringError(f"head {self.head} does not exist at {name}, which has {act.shape[2]} heads")
            act = act[:, :, self.head]
        elif self.head is not None:
            raise SteeringError(f"{name} is not a per-head hook; head={self.head} needs hook_z or hook_result")
        if act.shape[-1] != self.vector.shape[0]:
            raise SteeringError(f"{name} has width {act.shape[-1]}, the direction has {self.vector.shape[0]}")
        return act

    def _unit(self, act: Tensor) -> Tensor:
        return (self.vector / self.vector.norm()).to(act.device, act.dtype)

    def coordinate(self, act: Tensor, name: str) -> Tensor:
        """Projection [batch, pos] on the unit direction, in activation units."""
        part = self._slice(act, name)
        return part @ self._unit(part)

    def write(self, act: Tensor, name: str, new: Tensor, mask: Tensor) -> Tensor:
        """`act` with its coordinate set to `new` [batch, pos] where `mask` holds (edited in place and returned)."""
        part = self._slice(act, name)
        unit = self._unit(part)
        old = part @ unit
        shift = (_masked(new.to(part.dtype), old, mask) - old)[..., None] * unit
        part += shift
        return act


@dataclass(frozen=True)
class Latent:
    """Latent `index` of `dictionary` (bound to the hook it edits): coordinates are its activations."""

    dictionary: BoundDictionary
    index: int

    def __post_init__(self):
        if not 0 <= self.index < self.dictionary.dictionary.d_sae:
            raise SteeringError(f"latent {self.index} does not exist; the dictionary has "
                                f"{self.dictionary.dictionary.d_sae} latents")

    scale = 1.0

    def _codes(self, act: Tensor, name: str) -> Tensor:
        if name != self.dictionary.hook:
            raise SteeringError(f"this latent's dictionary reads {self.dictionary.hook}, not {name}")
        module = self.dictionary.dictionary
        return module.encode(act.to(module.W_enc.dtype))

    def coordinate(self, act: Tensor, name: str) -> Tensor:
        return self._codes(act, name)[..., self.index].to(act.dtype)

    def write(self, act: Tensor, name: str, new: Tensor, mask: Tensor) -> Tensor:
        """`act` plus decode(edited codes) - decode(codes): the error term is kept, and an unchanged code changes
        nothing, bit for bit."""
        module = self.dictionary.dictionary
        codes = self._codes(act, name)
        edited = codes.clone()
        edited[..., self.index] = _masked(new.to(codes.dtype), codes[..., self.index], mask)
        norm = module.input_norm(act.to(codes.dtype))
        act += (module.decode(edited, norm) - module.decode(codes, norm)).to(act.dtype)
        return act
