"""CLI verbs for the fused TopK encoder: kernels build, kernels status."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf
from mechscope.errors import MechscopeError


class KernelBuildError(MechscopeError):
    """The C++ extension did not compile; training and encoding still work on the plain PyTorch path."""


def build(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.kernels import build_kernels, kernel_status

    try:
        library = build_kernels()
    except (OSError, RuntimeError, ImportError) as err:
        raise KernelBuildError(f"the fused TopK extension did not build ({str(err).splitlines()[0][:300]}); "
                               "mechscope falls back to addmm + topk") from err
    return {"library": str(library), **kernel_status()}


def status(args: argparse.Namespace) -> dict:
    from mechscope.dictionaries.kernels import kernel_status

    return kernel_status()


def register(verbs) -> None:
    group = verbs.add_parser("kernels", help="the fused TopK encoder (C++ on CPU, Triton on CUDA)").add_subparsers(
        dest="action", required=True)
    leaf(group, "build", build, "compile the C++ extension into the mechscope cache (once per torch version)")
    leaf(group, "status", status, "which fused TopK backend CPU and CUDA tensors get, and why not")
