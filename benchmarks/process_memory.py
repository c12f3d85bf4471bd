"""This process's resident memory for the benchmarks (Linux /proc): now, its peak, and restarting the peak."""

from __future__ import annotations

GIB_IN_MIB = 1024


def status_mib(field: str) -> float:
    """VmRSS or VmHWM (the peak since start or the last reset_peak) of this process, in MiB."""
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak() -> float:
    """Restart the peak (VmHWM) from the current resident memory (Linux clear_refs 5); returns that memory (MiB)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return status_mib("VmRSS")
