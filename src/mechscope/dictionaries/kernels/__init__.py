"""Fused kernels for dictionary training and inference: the TopK encoder on CPU (C++) and GPU (Triton)."""

from mechscope.dictionaries.kernels.cpu import build as build_kernels
from mechscope.dictionaries.kernels.fused import KernelInputError, fused_topk, kernel_status

__all__ = ["KernelInputError", "build_kernels", "fused_topk", "kernel_status"]
