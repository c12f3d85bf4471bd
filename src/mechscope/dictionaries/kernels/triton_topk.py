"""The fused TopK encoder on GPU: one Triton program per block of rows keeps their running top-k in registers.

For each latent block it computes the [rows, latents] tile with tl.dot and then, while the tile's largest
entry beats the smallest kept one, swaps it in (an exact merge of the kept k and the tile). Triton is
imported only when a CUDA tensor asks for it; `TRITON_INTERPRET=1` runs the same kernel on CPU tensors.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache

import torch
from torch import Tensor


def unusable_reason() -> str:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if not torch.cuda.is_available() and not interpreted():
        return "no CUDA device"
    return ""


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def fused_topk_kernel(x_ptr, w_ptr, b_ptr, values_ptr, indices_ptr, batch, d_in, d_sae, k,
                          stride_xm, stride_xk, stride_wk, stride_wn,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, KP: tl.constexpr,
                          PRECISION: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = rows < batch
        slots = tl.arange(0, KP)
        lanes = tl.arange(0, BLOCK_N)
        # kept values; the padding slots beyond k hold +inf so they are never the smallest
        kept = tl.where(slots[None, :] < k, float("-inf"), float("inf")) + tl.zeros((BLOCK_M, KP), tl.float32)
        kept_at = tl.zeros((BLOCK_M, KP), tl.int64)
        for n0 in range(0, d_sae, BLOCK_N):
            cols = n0 + lanes
            acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
            for k0 in range(0, d_in, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                a = tl.load(x_ptr + rows[:, None] * stride_xm + ks[None, :] * stride_xk,
                            mask=row_ok[:, None] & (ks[None, :] < d_in), other=0.0)
                w = tl.load(w_ptr + ks[:, None] * stride_wk + cols[None, :] * stride_wn,
                            mask=(ks[:, None] < d_in) & (cols[None, :] < d_sae), other=0.0)
                acc += tl.dot(a, w, input_precision=PRECISION)
            bias = tl.load(b_ptr + cols, mask=cols < d_sae, other=0.0).to(tl.float32)
            tile = tl.where(cols[None, :] < d_sae, acc + bias[None, :], float("-inf"))
            low = tl.min(kept, axis=1)
            high = tl.max(tile, axis=1)
            while tl.max((high > low).to(tl.int32)) > 0:
                take = high > low
                at = tl.argmax(tile, axis=1)
                slot = tl.argmin(kept, axis=1)
                swap = take[:, None] & (slots[None, :] == slot[:, None])
                kept = tl.where(swap, high[:, None], kept)
                kept_at = tl.where(swap, (n0 + at)[:, None].to(tl.int64), kept_at)
                tile = tl.where(take[:, None] & (lanes[None, :] == at[:, None]), float("-inf"), tile)
                low = tl.min(kept, axis=1)
                high = tl.max(tile, axis=1)
        out = rows[:, None] * k + slots[None, :]
        keep = row_ok[:, None] & (slots[None, :] < k)
        tl.store(values_ptr + out, kept.to(values_ptr.dtype.element_ty), mask=keep)
        tl.store(indices_ptr + out, kept_at, mask=keep)

    return fused_topk_kernel


def topk(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(values, indices) [batch, k] of x @ W_enc + b_enc, unsorted; fp32 products in IEEE precision."""
    import triton

    batch, d_in = x.shape
    kp = triton.next_power_of_2(k)
    block_m = 64 if kp <= 64 else 16
    values = torch.empty(batch, k, dtype=x.dtype, device=x.device)
    indices = torch.empty(batch, k, dtype=torch.int64, device=x.device)
    W_enc = W_enc.to(x.dtype)
    precision = "ieee" if x.dtype == torch.float32 else "tf32"
    _kernel()[(triton.cdiv(batch, block_m),)](
        x, W_enc, b_enc, values, indices, batch, d_in, W_enc.shape[1], k,
        x.stride(0), x.stride(1), W_enc.stride(0), W_enc.stride(1),
        BLOCK_M=block_m, BLOCK_N=64, BLOCK_K=32, KP=kp, PRECISION=precision)
    return values, indices
