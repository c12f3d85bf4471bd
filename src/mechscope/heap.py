"""Heap reuse for training loops: freed large buffers stay in the process heap instead of going back to the OS.

glibc serves allocations above 32 MiB (a [16384, 1024] gradient, a [4096, 16384] pre-activation tile) with fresh
mmap pages and unmaps them when freed, so every step faults the same memory in again: 15 ms per 64 MiB on this
CPU, 150+ ms of a 1 s TopK step at d_sae 16384 (benchmarks/RESULTS.md). Inside `reused_heap()` such allocations
come from the heap and freed ones are kept for the next step; leaving it trims the heap and restores the
defaults. Only on glibc (Linux); elsewhere, or with MECHSCOPE_HEAP_REUSE=0, it changes nothing. The price is
heap growth in latent-sharded runs (not from AuxK's changing buffer, which was tested): on a 262k-latent run the
peak rose by 1 GiB (28% over the estimate), so training uses it only without latent sharding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from contextlib import contextmanager
from functools import cache

VARIABLE = "MECHSCOPE_HEAP_REUSE"  # "0": leave glibc's allocation policy alone
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
KEEP_ALL = 2**31 - 1  # trim threshold (an int): never hand the heap's top back while inside


@cache
def _glibc():
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - musl and others lack one of them
    except (OSError, AttributeError):
        return None
    return libc


def enabled() -> bool:
    """Whether `reused_heap` changes the allocation policy in this process."""
    setting = os.environ.get(VARIABLE, "1").strip().lower()
    return setting not in ("0", "off", "false", "no") and _glibc() is not None


@contextmanager
def reused_heap(wanted: bool = True):
    """Within: large freed buffers are reused instead of unmapped and faulted in again. Nests; the outermost exit
    restores glibc's defaults and returns the kept memory to the OS. `wanted=False` changes nothing: reuse trades
    memory for speed (the kept heap grows in latent-sharded runs), which those runs cannot spare."""
    outermost = _depth[0] == 0 and wanted and enabled()
    _depth[0] += 1
    if outermost:
        _glibc().mallopt(M_MMAP_MAX, 0)
        _glibc().mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
    try:
        yield
    finally:
        _depth[0] -= 1
        if outermost:
            _glibc().mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            _glibc().mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            _glibc().malloc_trim(0)


_depth = [0]  # reused_heap's nesting depth in this process
