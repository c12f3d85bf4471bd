"""Sparse codes and the kernels that keep TopK-family training proportional to the active latents.

With k of d_sae latents active per token, the encoder's forward matmul is the only dense work
left: the decoder, and every gradient of the encoder and decoder, touch only the selected
(token, latent) pairs through CSR sparse products (the C++ extension's `csr_dense` for float32 on CPU,
torch.sparse elsewhere, so CUDA and MPS alike).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mechscope.dictionaries.kernels.fused import cpu_kernels

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


@dataclass
class SparseCodes:
    """The (token, latent) pairs a sparse activation selected, in row-major (CSR) order."""

    rows: Tensor  # [nnz] token index, non-decreasing
    cols: Tensor  # [nnz] latent index
    batch: int
    width: int

    @classmethod
    def from_topk(cls, indices: Tensor, width: int) -> "SparseCodes":
        batch, k = indices.shape
        rows = torch.arange(batch, device=indices.device).repeat_interleave(k)
        return cls(rows, indices.reshape(-1), batch, width)

    @classmethod
    def from_mask(cls, mask: Tensor) -> "SparseCodes":
        rows, cols = mask.nonzero(as_tuple=True)
        return cls(rows, cols, mask.shape[0], mask.shape[1])

    @cached_property
    def crow(self) -> Tensor:
        counts = torch.bincount(self.rows, minlength=self.batch)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    @cached_property
    def by_latent(self) -> tuple[Tensor, Tensor, Tensor]:
        """(order, crow over latents, rows in that order): the transpose's CSR layout."""
        order = torch.argsort(self.cols, stable=True)
        counts = torch.bincount(self.cols, minlength=self.width)
        return order, torch.cat([counts.new_zeros(1), counts.cumsum(0)]), self.rows[order]

    def matrix(self, values: Tensor) -> Tensor:
        """[batch, width] CSR matrix holding `values` at the selected pairs."""
        return torch.sparse_csr_tensor(self.crow, self.cols, values, (self.batch, self.width),
                                       check_invariants=False)

    def times(self, values: Tensor, dense: Tensor) -> Tensor:
        """matrix(values) @ dense [width, d] -> [batch, d]."""
        return _csr_dense(self.crow, self.cols, values, dense, self.width)

    def transposed_times(self, values: Tensor, dense: Tensor) -> Tensor:
        """matrix(values).T @ dense [batch, d] -> [width, d], through the codes' latent-major order."""
        order, crow, rows = self.by_latent
        return _csr_dense(crow, rows, values[order], dense, self.batch)

    def dense(self, values: Tensor) -> Tensor:
        """[batch, width] zeros holding `values` at the selected pairs (filled in place: one [batch, width] buffer)."""
        return values.new_zeros(self.batch, self.width).index_put_((self.rows, self.cols), values)

    def subset(self, keep: Tensor) -> "SparseCodes":
        return SparseCodes(self.rows[keep], self.cols[keep], self.batch, self.width)


def _csr_dense(crow: Tensor, cols: Tensor, values: Tensor, dense: Tensor, width: int) -> Tensor:
    """A CSR matrix [len(crow) - 1, width] times `dense` [width, d]: the C++ extension's loop for float32 on CPU
    (no zero fill or copy of the output), torch.sparse elsewhere."""
    if dense.device.type == "cpu" and values.dtype == dense.dtype == torch.float32:
        module = cpu_kernels()
        if module is not None:
            return module.csr_dense(crow, cols, values, dense)
    matrix = torch.sparse_csr_tensor(crow, cols, values, (len(crow) - 1, width), check_invariants=False)
    return matrix @ dense


def pair_dots(A: Tensor, B: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """[pairs]: <A[rows[e]], B[cols[e]]>, the sampled product A @ B.T, for pairs in a SparseCodes' order (rows
    non-decreasing): the C++ extension's latent-ordered loop for float32 on CPU, torch.sparse's sampled_addmm
    elsewhere."""
    if A.device.type == "cpu" and A.dtype == B.dtype == torch.float32:
        module = cpu_kernels()
        if module is not None:
            return module.pair_dots(A, B, rows, cols)
    codes = SparseCodes(rows, cols, A.shape[0], B.shape[0])
    pattern = codes.matrix(A.new_zeros(len(rows)))
    return torch.sparse.sampled_addmm(pattern, A.contiguous(), B.T, beta=0.0).values()


class _EncoderValues(torch.autograd.Function):
    """values = (x - b_dec) @ W_enc + b_enc at the selected pairs, with a backward that is sparse too."""

    @staticmethod
    def forward(ctx, values, x_in, b_dec, W_enc, b_enc, codes: SparseCodes):
        ctx.codes = codes
        ctx.save_for_backward(x_in, b_dec, W_enc)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        x_in, b_dec, W_enc = ctx.saved_tensors
        codes: SparseCodes = ctx.codes
        g_W = g_benc = g_bdec = None
        if ctx.needs_input_grad[3]:  # [d_sae, B] @ [B, d_in] -> [d_sae, d_in], handed over in W_enc's own layout
            g_W = codes.transposed_times(grad, x_in - b_dec).T
        col_sum = torch.zeros(codes.width, dtype=grad.dtype, device=grad.device).index_add_(0, codes.cols, grad)
        if ctx.needs_input_grad[4]:
            g_benc = col_sum
        if ctx.needs_input_grad[2]:  # x_in - b_dec enters every selected pre-activation
            g_bdec = -(W_enc @ col_sum)
        return None, None, g_bdec, g_W, g_benc, None


class _Decode(torch.autograd.Function):
    """x_hat = codes @ W_dec (no bias), touching only the selected rows of W_dec."""

    @staticmethod
    def forward(ctx, values, W_dec, codes: SparseCodes):
        ctx.codes = codes
        ctx.save_for_backward(values, W_dec)
        return codes.times(values, W_dec)

    @staticmethod
    def backward(ctx, grad):
        values, W_dec = ctx.saved_tensors
        codes: SparseCodes = ctx.codes
        g_values = g_W = None
        if ctx.needs_input_grad[0]:  # <grad[row], W_dec[col]> for each selected pair only
            g_values = pair_dots(grad, W_dec, codes.rows, codes.cols)
        if ctx.needs_input_grad[1]:
            g_W = codes.transposed_times(values, grad)
        return g_values, g_W, None


def encoder_values(raw: Tensor, x_in: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor,
                   codes: SparseCodes, sparse: bool = True) -> Tensor:
    """Differentiable pre-activations at the selected pairs; `raw` holds their no-grad values."""
    if sparse:
        return _EncoderValues.apply(raw, x_in, b_dec, W_enc, b_enc, codes)
    dense = (x_in - b_dec) @ W_enc + b_enc  # plain autograd reference path
    return dense[codes.rows, codes.cols]


def decode(values: Tensor, W_dec: Tensor, codes: SparseCodes, sparse: bool = True) -> Tensor:
    """Reconstruction without the decoder bias from sparse codes."""
    if sparse:
        return _Decode.apply(values, W_dec, codes)
    return codes.dense(values) @ W_dec
