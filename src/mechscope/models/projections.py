"""Per-head views of the attention projections: q/k/v out of (possibly fused) projections, per-head inputs
and per-head results, computed from the projection weights as views (GQA weights are never repeated).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.models.families import Family


def _conv1d(module: nn.Module) -> bool:
    """GPT-2's Conv1D stores its weight as [in, out], the transpose of nn.Linear's."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


class QKVSlice:
    """Where one of q/k/v lies in its projection's output: columns, head count and d_head."""

    def __init__(self, family: Family, part: str, n_heads: int, n_kv_heads: int, d_head: int):
        index = "qkv".index(part)
        self.n_heads = n_heads if part == "q" else n_kv_heads
        self.d_head = d_head
        width = self.n_heads * d_head
        if family.qkv_layout == "split":
            self.columns: slice | Tensor = slice(None)
        elif family.qkv_layout == "concat":  # [q (n_heads) | k (n_kv_heads) | v (n_kv_heads)]
            start = 0 if part == "q" else n_heads * d_head + (index - 1) * n_kv_heads * d_head
            self.columns = slice(start, start + width)
        else:  # interleaved, GPT-NeoX: [head][q|k|v][d_head]
            heads = torch.arange(self.n_heads)[:, None] * 3 * d_head
            self.columns = (heads + index * d_head + torch.arange(d_head)).reshape(-1)

    def read(self, output: Tensor) -> Tensor:
        """[batch, pos, head, d_head], a view where the layout allows."""
        return output[..., self.columns].unflatten(-1, (self.n_heads, self.d_head))

    def write(self, output: Tensor, part: Tensor) -> Tensor:
        """The projection output with this part replaced by `part` [batch, pos, head, d_head]."""
        if isinstance(self.columns, slice) and self.columns == slice(None):
            return part.flatten(-2)
        out = output.clone()
        out[..., self.columns] = part.flatten(-2).to(out.dtype)
        return out

    def weights(self, projection: nn.Module) -> tuple[Tensor, Tensor | None]:
        """(W [head, d_head, d_in], b [head, d_head] or None) of this part."""
        weight = projection.weight.T if _conv1d(projection) else projection.weight  # [out, in]
        weight = weight[self.columns].unflatten(0, (self.n_heads, self.d_head))
        bias = projection.bias
        return weight, None if bias is None else bias[self.columns].unflatten(0, (self.n_heads, self.d_head))

    def project(self, projection: nn.Module, inputs: Tensor) -> Tensor:
        """Each head's part from its own copy of the input: [batch, pos, head, d_in] -> [batch, pos, head, d_head]."""
        weight, bias = self.weights(projection)
        out = torch.einsum("bphi,hdi->bphd", inputs.to(weight.dtype), weight)
        return out if bias is None else out + bias


def head_results(out_proj: nn.Module, z: Tensor, n_heads: int) -> Tensor:
    """Each head's term of the output projection, without its bias: [batch, pos, head, d_model]."""
    weight = out_proj.weight if _conv1d(out_proj) else out_proj.weight.T  # [n_heads * d_head, d_model]
    w_o = weight.unflatten(0, (n_heads, -1))  # a view: [head, d_head, d_model]
    return torch.einsum("bphd,hdm->bphm", z.unflatten(-1, (n_heads, -1)).to(w_o.dtype), w_o)


def sum_results(out_proj: nn.Module, result: Tensor) -> Tensor:
    """What the output projection returns for per-head results `result`: their sum plus its bias."""
    total = result.sum(-2)
    return total if out_proj.bias is None else total + out_proj.bias
