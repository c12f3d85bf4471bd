"""What can be patched: each component names a hook per layer and whether it splits by head and position."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mechscope.errors import MechscopeError


@dataclass(frozen=True)
class Patch:
    """One intervention site: a hook and the (head, position) it covers; None covers every head / position."""

    hook: str
    head: int | None = None
    pos: int | None = None
    head_dim: int = 2  # axis of the head in the hook's [batch, ...] tensor
    pos_dim: int = 1  # axis of the (query) position

    def index(self, ndim: int, offset: int = 0) -> tuple:
        """Index into one row's tensor (the hook tensor without its batch axis) selecting the patched part;
        `offset` is the first position the tensor holds."""
        index = [slice(None)] * (ndim - 1)
        if self.head is not None:
            index[self.head_dim - 1] = self.head
        if self.pos is not None:
            index[self.pos_dim - 1] = self.pos - offset
        return tuple(index)


@dataclass(frozen=True)
class Component:
    """A family of patches: `hook` with {layer}, split by head and/or position."""

    name: str
    hook: str
    per_head: bool = False
    by_pos: bool = False
    head_dim: int = 2
    pos_dim: int = 1

    def axes(self) -> tuple[str, ...]:
        return ("layer",) + (("head",) if self.per_head else ()) + (("pos",) if self.by_pos else ())

    def sizes(self, model, n_pos: int) -> dict[str, int]:
        sizes = {"layer": model.n_layers, "pos": n_pos}
        if self.per_head:
            shape = model.hook_shape(self.hook.format(layer=0))
            sizes["head"] = int(shape[self.head_dim])
        return {axis: sizes[axis] for axis in self.axes()}

    def patches(self, model, n_pos: int) -> tuple[list[Patch], dict[str, int]]:
        """Every patch of this component in row-major order of its axes, and the axis sizes."""
        sizes = self.sizes(model, n_pos)
        patches = []
        for point in itertools.product(*(range(n) for n in sizes.values())):
            where = dict(zip(sizes, point))
            patches.append(Patch(self.hook.format(layer=where["layer"]), where.get("head"), where.get("pos"),
                                 self.head_dim, self.pos_dim))
        return patches, sizes


COMPONENTS: dict[str, Component] = {c.name: c for c in (
    Component("resid", "blocks.{layer}.hook_resid_pre", by_pos=True),
    Component("resid-post", "blocks.{layer}.hook_resid_post", by_pos=True),
    Component("attn", "blocks.{layer}.hook_attn_out"),
    Component("attn-by-pos", "blocks.{layer}.hook_attn_out", by_pos=True),
    Component("mlp", "blocks.{layer}.hook_mlp_out"),
    Component("mlp-by-pos", "blocks.{layer}.hook_mlp_out", by_pos=True),
    Component("heads", "blocks.{layer}.attn.hook_z", per_head=True),
    Component("heads-by-pos", "blocks.{layer}.attn.hook_z", per_head=True, by_pos=True),
    Component("q-input", "blocks.{layer}.attn.hook_q_input", per_head=True),
    Component("k-input", "blocks.{layer}.attn.hook_k_input", per_head=True),
    Component("v-input", "blocks.{layer}.attn.hook_v_input", per_head=True),
    Component("pattern", "blocks.{layer}.attn.hook_pattern", per_head=True, head_dim=1, pos_dim=2),
)}


def component(name: str | Component) -> Component:
    if isinstance(name, Component):
        return name
    if name not in COMPONENTS:
        raise MechscopeError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")
    return COMPONENTS[name]
