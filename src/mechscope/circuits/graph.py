"""The computational graph edge methods score: nodes and edges named as in MIB and EAP-IG (Hanna et al. 2024).

Sources (nodes that write to the residual stream, in the order they run): `input` (the embedding,
blocks.0.hook_resid_pre), every head `a{l}.h{h}` (attn.hook_result) and every MLP `m{l}` (hook_mlp_out).
Destinations (what reads it): each head's query, key and value input `a{l}.h{h}<q|k|v>` (attn.hook_{q,k,v}_input),
each MLP input `m{l}` (hook_mlp_in) and `logits` (the last block's output, before the final norm). Under GQA
a key/value input belongs to a KV head shared by a group of query heads, so it is named `a{l}.kv{g}<k|v>`.
An edge `"{src}->{dst}"` exists when the source runs before the destination reads the residual stream; in
parallel-residual blocks (GPT-NeoX) the attention of layer l does not feed the MLP of layer l.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mechscope.errors import MechscopeError


@dataclass(frozen=True)
class HookGroup:
    """Consecutive graph nodes served by one hook: indices [start, start + size) along the hook's head axis."""

    hook: str
    start: int
    size: int
    upstream: int = 0  # destinations only: how many sources run before this hook reads the residual stream

    @property
    def stop(self) -> int:
        return self.start + self.size


_DEST = re.compile(r"^a(\d+)\.(h|kv)(\d+)<([qkv])>$|^m(\d+)$|^logits$")
_SRC = re.compile(r"^input$|^a(\d+)\.h(\d+)$|^m(\d+)$")


@dataclass(frozen=True)
class EdgeGraph:
    """Sources, destinations and valid edges of a pre-norm transformer with `n_layers` blocks."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    parallel: bool = False  # attention and MLP of a block read the same residual stream (GPT-NeoX, Phi-2)

    @classmethod
    def for_model(cls, model) -> EdgeGraph:
        """The graph of a HookedModel; post-norm and sandwich-norm blocks have no additive edges and are refused."""
        family = model.family
        if family.topology == "postnorm" or family.ln1_post is not None or family.ln2_post is not None:
            raise MechscopeError(
                f"edge-level circuits need pre-norm blocks whose attention heads and MLP add their outputs straight "
                f"to the residual stream; {model.info.name} ({family.name}) normalises them first, so a head's "
                "output is not a term of what later layers read")
        return cls(model.n_layers, model.info.n_heads, model.info.n_kv_heads, family.topology == "parallel")

    @classmethod
    def from_edges(cls, names: Iterable[str], parallel: bool = False) -> EdgeGraph:
        """The smallest graph whose edges include `names` (e.g. the keys of a scores dict from another tool).

        Sequential blocks are assumed unless `parallel`: their edges are a superset of a parallel model's.
        """
        layers, heads, kv = 0, 0, 0
        for name in names:
            src, sep, dst = name.partition("->")
            s, d = _SRC.match(src), _DEST.match(dst)
            if not sep or s is None or d is None:
                raise MechscopeError(f"expected edge names like 'input->a0.h1<q>', 'a0.h1->m0' or 'm0->logits'; "
                                     f"got {name!r}")
            layers = max([layers] + [int(g) + 1 for g in (s.group(1), s.group(3), d.group(1), d.group(5)) if g])
            if s.group(2) is not None:
                heads = max(heads, int(s.group(2)) + 1)
            if d.group(2) == "h":
                heads = max(heads, int(d.group(3)) + 1)
            elif d.group(2) == "kv":
                kv = max(kv, int(d.group(3)) + 1)
        return cls(layers, heads, kv or heads, parallel)

    # ----- nodes -------------------------------------------------------------------------------
    @property
    def per_layer(self) -> int:
        return self.n_heads + 1

    def kv_name(self, layer: int, index: int, part: str) -> str:
        kind = "h" if self.n_kv_heads == self.n_heads else "kv"
        return f"a{layer}.{kind}{index}<{part}>"

    @cached_property
    def source_groups(self) -> tuple[HookGroup, ...]:
        groups = [HookGroup("blocks.0.hook_resid_pre", 0, 1)]
        for layer in range(self.n_layers):
            start = 1 + layer * self.per_layer
            groups.append(HookGroup(f"blocks.{layer}.attn.hook_result", start, self.n_heads))
            groups.append(HookGroup(f"blocks.{layer}.hook_mlp_out", start + self.n_heads, 1))
        return tuple(groups)

    @cached_property
    def destination_groups(self) -> tuple[HookGroup, ...]:
        groups, start = [], 0
        for layer in range(self.n_layers):
            before = 1 + layer * self.per_layer
            for part, size in (("q", self.n_heads), ("k", self.n_kv_heads), ("v", self.n_kv_heads)):
                groups.append(HookGroup(f"blocks.{layer}.attn.hook_{part}_input", start, size, before))
                start += size
            groups.append(HookGroup(f"blocks.{layer}.hook_mlp_in", start, 1,
                                    before + (0 if self.parallel else self.n_heads)))
            start += 1
        groups.append(HookGroup(f"blocks.{self.n_layers - 1}.hook_resid_post", start, 1, self.n_sources))
        return tuple(groups)

    @cached_property
    def sources(self) -> tuple[str, ...]:
        names = ["input"]
        for layer in range(self.n_layers):
            names += [f"a{layer}.h{h}" for h in range(self.n_heads)] + [f"m{layer}"]
        return tuple(names)

    @cached_property
    def destinations(self) -> tuple[str, ...]:
        names = []
        for layer in range(self.n_layers):
            names += [f"a{layer}.h{h}<q>" for h in range(self.n_heads)]
            names += [self.kv_name(layer, g, part) for part in "kv" for g in range(self.n_kv_heads)]
            names.append(f"m{layer}")
        return tuple(names + ["logits"])

    @property
    def n_sources(self) -> int:
        return 1 + self.n_layers * self.per_layer

    @property
    def n_destinations(self) -> int:
        return self.n_layers * (self.n_heads + 2 * self.n_kv_heads + 1) + 1

    def destination_nodes(self, dst: int) -> tuple[str, ...]:
        """The nodes a destination feeds: its head (every head of the group for a shared key/value input)."""
        name = self.destinations[dst]
        match = _DEST.match(name)
        if match.group(1) is None:
            return (name,)
        layer, index = int(match.group(1)), int(match.group(3))
        if match.group(2) == "h":
            return (f"a{layer}.h{index}",)
        group = self.n_heads // self.n_kv_heads
        return tuple(f"a{layer}.h{h}" for h in range(index * group, (index + 1) * group))

    # ----- edges -------------------------------------------------------------------------------
    @cached_property
    def upstream(self) -> Tensor:
        """[n_destinations]: sources that run before each destination."""
        counts = torch.empty(self.n_destinations, dtype=torch.long)
        for group in self.destination_groups:
            counts[group.start:group.stop] = group.upstream
        return counts

    @cached_property
    def real(self) -> Tensor:
        """[n_sources, n_destinations] bool: which source/destination pairs are edges."""
        return torch.arange(self.n_sources)[:, None] < self.upstream[None, :]

    @property
    def n_edges(self) -> int:
        return int(self.real.sum())

    @cached_property
    def edge_index(self) -> tuple[Tensor, Tensor]:
        """(source, destination) index of every edge, ordered by destination, then source."""
        dst, src = self.real.T.nonzero(as_tuple=True)
        return src, dst

    @cached_property
    def edge_names(self) -> tuple[str, ...]:
        src, dst = self.edge_index
        return tuple(f"{self.sources[s]}->{self.destinations[d]}" for s, d in zip(src.tolist(), dst.tolist()))

    @cached_property
    def _position(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.edge_names)}

    def flat(self, matrix: Tensor) -> Tensor:
        """[n_edges] entries of a [..., n_sources, n_destinations] matrix, in `edge_names` order."""
        src, dst = self.edge_index
        return matrix[..., src, dst]

    def matrix(self, values: Tensor) -> Tensor:
        """The [n_sources, n_destinations] matrix (zero off the edges) of per-edge `values` [n_edges]."""
        out = torch.zeros(self.n_sources, self.n_destinations, dtype=values.dtype)
        src, dst = self.edge_index
        out[src, dst] = values.cpu()
        return out

    def scores_dict(self, matrix: Tensor) -> dict[str, float]:
        """{edge name: score} from a [n_sources, n_destinations] score matrix."""
        return dict(zip(self.edge_names, self.flat(matrix.detach().cpu()).tolist()))

    def scores_matrix(self, scores: Mapping[str, float]) -> Tensor:
        """A [n_sources, n_destinations] float32 matrix from {edge name: score}; unknown names are an error."""
        values = torch.zeros(self.n_edges)
        for name, score in scores.items():
            values[self.index_of(name)] = float(score)
        return self.matrix(values)

    def index_of(self, edge: str) -> int:
        if edge not in self._position:
            raise MechscopeError(f"{edge!r} is not an edge of this graph ({self.n_layers} layers, {self.n_heads} "
                                 f"heads, {self.n_kv_heads} KV heads, {'parallel' if self.parallel else 'sequential'} "
                                 f"blocks); edges look like {self.edge_names[0]!r}")
        return self._position[edge]

    def edge_mask(self, edges: Iterable[str]) -> Tensor:
        """[n_sources, n_destinations] bool, true on `edges`."""
        values = torch.zeros(self.n_edges, dtype=torch.bool)
        for edge in edges:
            values[self.index_of(edge)] = True
        return self.matrix(values)

    def edges_in(self, mask: Tensor) -> set[str]:
        """The names of the edges where a [n_sources, n_destinations] mask is true."""
        return {name for name, keep in zip(self.edge_names, self.flat(mask.cpu()).tolist()) if keep}

    def describe(self) -> dict:
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads,
                "parallel": self.parallel, "n_sources": self.n_sources, "n_destinations": self.n_destinations,
                "n_edges": self.n_edges}
