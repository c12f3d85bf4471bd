"""fused_topk: the top k of each row of x @ W_enc + b_enc without the [batch, d_sae] pre-activations.

On CPU the C++ extension (`kernels.cpu`), on CUDA the Triton kernel (`kernels.triton_topk`); elsewhere, or
when neither is available, the plain `addmm` + `topk` path, with one warning saying why.
"""

from __future__ import annotations

import os
import warnings
from functools import cache

import torch
from torch import Tensor

from mechscope.dictionaries.kernels import cpu, triton_topk
from mechscope.errors import MechscopeError

TILE_BYTES = 8 << 20  # one [rows, latent_block] tile of pre-activations: stays in this CPU's 32 MB L3
ROW_BLOCK = 1024  # rows per GEMM (its slice of x stays in cache across latent blocks)
# On CPU the fused kernel saves memory but, on this 2-core machine, not time (benchmarks/RESULTS.md): it runs where
# the dense pre-activations would take at least this much, addmm + topk below it.
FUSED_FROM_BYTES = 512 << 20
DISABLE_VARIABLE = "MECHSCOPE_FUSED_TOPK"  # "0": the plain PyTorch path on every device


class KernelInputError(MechscopeError):
    """fused_topk was given tensors whose shapes or k do not fit together."""


def disabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "1").strip().lower() in ("0", "off", "false", "no")


@cache
def _cpu_backend() -> tuple[object | None, str]:
    """(extension module or None, why not)."""
    if disabled():
        return None, f"{DISABLE_VARIABLE}=0"
    try:
        return cpu.extension(), ""
    except (OSError, RuntimeError, ImportError) as err:  # cpp_extension reports a failed compile as RuntimeError
        return None, f"the C++ extension did not build or load ({type(err).__name__}: {str(err).splitlines()[0][:200]})"


@cache
def _warn_fallback(reason: str) -> None:
    warnings.warn(f"mechscope: fused TopK encoder unavailable, using addmm + topk ({reason}); "
                  "`mechscope kernels build` builds it, `mechscope kernels status` says why", stacklevel=3)


def _cuda_reason() -> str:
    """Why CUDA tensors take the plain path ("" when the Triton kernel runs)."""
    return f"{DISABLE_VARIABLE}=0" if disabled() else triton_topk.unusable_reason()


def kernel_status() -> dict:
    """Which fused TopK backends this process uses, and why not where it does not."""
    module, reason = _cpu_backend()
    return {"cpu": "c++ extension" if module is not None else f"fallback: {reason}",
            "cpu_library": str(cpu.library_file(cpu.build_directory())) if module is not None else None,
            "cuda": f"fallback: {_cuda_reason()}" if _cuda_reason() else "triton"}


def reset() -> None:
    """Forget the backend choice and the warning (after changing MECHSCOPE_FUSED_TOPK)."""
    _cpu_backend.cache_clear()
    _warn_fallback.cache_clear()


def _check(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, mask: Tensor | None) -> None:
    if not x.dtype == W_enc.dtype == b_enc.dtype:
        raise KernelInputError(f"fused_topk needs one dtype for x, W_enc and b_enc, got {x.dtype}, {W_enc.dtype}, "
                               f"{b_enc.dtype}")
    if x.ndim != 2 or W_enc.ndim != 2 or b_enc.shape != (W_enc.shape[1],) or x.shape[1] != W_enc.shape[0]:
        raise KernelInputError(f"fused_topk expects x [batch, d_in], W_enc [d_in, d_sae], b_enc [d_sae]; got "
                               f"{tuple(x.shape)}, {tuple(W_enc.shape)}, {tuple(b_enc.shape)}")
    if mask is not None and (mask.shape != b_enc.shape or mask.dtype != torch.bool):
        raise KernelInputError(f"mask must be a bool [d_sae={b_enc.shape[0]}] tensor, got {mask.dtype} "
                               f"{tuple(mask.shape)}")
    eligible = b_enc.shape[0] if mask is None else int(mask.sum())
    if not 0 < k <= eligible:
        raise KernelInputError(f"k must be in 1..{eligible} (the latents{' the mask allows' if mask is not None else ''}), "
                               f"got {k}")


@torch.no_grad()
def fused_topk(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(values, indices) [batch, k] of the k largest entries of each row of x @ W_enc + b_enc.

    `mask` [d_sae] bool: only those latents compete (AuxK's dead latents); indices stay in 0..d_sae-1.
    x is the encoder's input already centred (x - b_dec). No gradient flows; recompute the values with
    `sparse_codes.encoder_values` for that.
    """
    _check(x, W_enc, b_enc, k, mask)
    if mask is not None:
        columns = mask.nonzero().squeeze(1)
        values, local = fused_topk(x, W_enc[:, columns], b_enc[columns], k)
        return values, columns[local]
    x, W_enc, b_enc = x.detach(), W_enc.detach(), b_enc.detach()
    if x.is_cuda:
        if not _cuda_reason():
            return triton_topk.topk(x, W_enc, b_enc, k)
        _warn_fallback(_cuda_reason())
    elif x.device.type == "cpu":
        module, reason = _cpu_backend()
        if module is None:
            _warn_fallback(reason)
        elif x.shape[0] * W_enc.shape[1] * x.element_size() >= FUSED_FROM_BYTES:
            rows = max(1, min(x.shape[0], ROW_BLOCK))
            latent_block = max(64, min(W_enc.shape[1], TILE_BYTES // (x.element_size() * rows)))
            return tuple(module.fused_topk(x.contiguous(), W_enc, b_enc, k, rows, latent_block))
    top = torch.addmm(b_enc, x, W_enc).topk(k, dim=-1, sorted=False)
    return top.values, top.indices
