"""fused_topk: the top k of each row of x @ W_enc + b_enc without the [batch, d_sae] pre-activations.

On CPU the C++ extension (`kernels.cpu`), on CUDA the Triton kernel (`kernels.triton_topk`); elsewhere, or
when neither is available, the plain `addmm` + `topk` path, with one warning saying why.

On CPUs with bf16 dot-product instructions (AVX512-BF16, AMX) float32 problems below the fused size are
screened: a bf16 product (twice the float32 GEMM's speed here) proposes k + k/2 candidates per row, their exact
float32 values pick the k, and a per-row rounding bound certifies that no other latent could have won; rows it
cannot certify are screened again with more candidates, or recomputed in float32. The selection is therefore
float32's, at about half the cost.
"""

from __future__ import annotations

import os
import warnings
from functools import cache

import torch
from torch import Tensor

from mechscope import heap
from mechscope.dictionaries.kernels import cpu, triton_topk
from mechscope.errors import MechscopeError

TILE_BYTES = 8 << 20  # one [rows, latent_block] tile of pre-activations: stays in this CPU's 32 MB L3
ROW_BLOCK = 1024  # rows per GEMM (its slice of x stays in cache across latent blocks)
# On CPU the fused kernel saves memory but, on this 2-core machine, not time (benchmarks/RESULTS.md): it runs where
# the dense pre-activations would take at least this much, addmm + topk below it.
FUSED_FROM_BYTES = 512 << 20
DISABLE_VARIABLE = "MECHSCOPE_FUSED_TOPK"  # "0": the plain PyTorch path on every device
SCREEN_VARIABLE = "MECHSCOPE_BF16_SCREEN"  # "0": never screen; "1": screen even without bf16 instructions


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


def cpu_kernels():
    """The loaded C++ extension, or None where it is unavailable or switched off (MECHSCOPE_FUSED_TOPK=0)."""
    return _cpu_backend()[0]


@cache
def _warn_fallback(reason: str) -> None:
    warnings.warn(f"mechscope: fused TopK encoder unavailable, using addmm + topk ({reason}); "
                  "`mechscope kernels build` builds it, `mechscope kernels status` says why", stacklevel=3)


@cache
def _screens() -> bool:
    """Whether float32 CPU problems are screened in bf16 (where the CPU multiplies bf16 natively)."""
    setting = os.environ.get(SCREEN_VARIABLE, "").strip().lower()
    if setting in ("0", "off", "false", "no", "1", "on", "true", "yes"):
        return setting in ("1", "on", "true", "yes")
    cpu_caps = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu_caps, probe, lambda: False)()) for probe in
               ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def _cuda_reason() -> str:
    """Why CUDA tensors take the plain path ("" when the Triton kernel runs)."""
    return f"{DISABLE_VARIABLE}=0" if disabled() else triton_topk.unusable_reason()


def kernel_status() -> dict:
    """Which fused TopK backends this process uses, and why not where it does not."""
    module, reason = _cpu_backend()
    return {"cpu": "c++ extension" if module is not None else f"fallback: {reason}",
            "cpu_library": module.__file__ if module is not None else None,  # the file loaded, whatever the cache root now
            "cpu_bf16_screen": module is not None and _screens(),
            "heap_reuse": heap.enabled(),  # unsharded training keeps freed buffers in the heap (mechscope.heap)
            "cuda": f"fallback: {_cuda_reason()}" if _cuda_reason() else "triton"}


def reset() -> None:
    """Forget the backend choice and the warning (after changing MECHSCOPE_FUSED_TOPK)."""
    _cpu_backend.cache_clear()
    _warn_fallback.cache_clear()
    _screens.cache_clear()


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
        elif x.dtype == torch.float32 and _screens() and 4 * (k + screen_margin(k)) <= W_enc.shape[1]:
            return screened_topk(module, x, W_enc, b_enc, k)
        else:
            values, indices = module.row_topk(x @ W_enc, b_enc, k)
            return values.to(x.dtype), indices
    top = torch.addmm(b_enc, x, W_enc).topk(k, dim=-1, sorted=False)
    return top.values, top.indices


def screen_margin(k: int) -> int:
    """Candidates beyond k that the bf16 screen keeps per row."""
    return max(8, k // 2)


def certified_limit(cut: Tensor, x: Tensor, x16: Tensor, M: Tensor, b_max: Tensor) -> Tensor:
    """[batch]: the largest float32 pre-activation a latent outside the screen's candidates can have.

    Such a latent j has round(p_j) + b_j <= cut (the smallest candidate's, up to the float add's 2^-23), where p_j
    = x16 W16_j is the bf16 product accumulated in float32 and rounded to bf16 once: |round(p) - p| <= 2^-9 |p|,
    bounded by 2^-8 |cut - b_j| or by Cauchy-Schwarz. And x W_j - p_j = (x - x16) W_j + x16 (W_j - W16_j) plus the
    accumulation's error (products of bf16 numbers are exact in float32; summing d_in of them errs by at most
    d_in 2^-24 of the absolute sum, as AVX512-BF16's float32 accumulators do), each bounded by Cauchy-Schwarz
    with M = the largest column norm of W (rounding to bf16 moves each entry by at most 2^-9 of itself).
    """
    cut = cut + 2.0**-23 * cut.abs()
    x16_norm, M16 = torch.linalg.vector_norm(x16, dim=1, dtype=torch.float32), M * (1 + 2.0**-9)
    rounding = torch.minimum(2.0**-8 * (cut.abs() + b_max), 2.0**-9 * x16_norm * M16)
    products = (torch.linalg.vector_norm(x - x16.float(), dim=1) * M + x16_norm * 2.0**-9 * M
                + 1.01 * x.shape[1] * 2.0**-24 * x16_norm * M16)
    return cut + rounding + products


def screened_topk(module, x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """float32's top k per row through a bf16 screen (see the module doc). Rows the bound cannot certify are
    screened again from the same bf16 product with four times the candidates, and in float32 only when the
    candidates would reach a quarter of the latents."""
    x16 = x.bfloat16()
    screen = torch.mm(x16, W_enc.bfloat16())
    W_t = W_enc.T.contiguous()  # [d_sae, d_in]: free for a Dictionary's latent-major W_enc, one copy otherwise
    bounds = (torch.linalg.vector_norm(W_enc, dim=0).max(), b_enc.abs().max())
    values = x.new_empty(x.shape[0], k)
    indices = torch.empty(x.shape[0], k, dtype=torch.long, device=x.device)
    pending, width = torch.arange(x.shape[0], device=x.device), k + screen_margin(k)
    while len(pending) and 4 * width <= W_enc.shape[1]:
        proposed, candidates = module.row_topk(screen, b_enc, width, pending)  # bf16 product + float32 bias
        exact = module.pair_dots(x, W_t, pending.repeat_interleave(width), candidates.reshape(-1))  # float32
        top, chosen = (exact.view_as(candidates) + b_enc[candidates]).topk(k, dim=1, sorted=False)
        rows = (x, x16) if len(pending) == x.shape[0] else (x[pending], x16[pending])
        certain = top.amin(dim=1) > certified_limit(proposed.amin(dim=1), *rows, *bounds)  # NaN rows never are
        values[pending[certain]], indices[pending[certain]] = top[certain], candidates.gather(1, chosen)[certain]
        pending, width = pending[~certain], 4 * width
    if len(pending):
        values[pending], indices[pending] = module.row_topk(x[pending] @ W_enc, b_enc, k)
    return values, indices
