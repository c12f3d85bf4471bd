import subprocess
import sys

import pytest

from mechscope import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="glibc only")


PROBE = """
import resource, torch
from mechscope import heap

def faults_of_a_repeated_allocation():
    for _ in range(3):  # a few steps' worth: the heap settles (a freed block may sit below a later small one)
        torch.empty(16 << 20).fill_(1.0)  # 64 MiB, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 << 20).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

outside = faults_of_a_repeated_allocation()
with heap.reused_heap():
    inside = faults_of_a_repeated_allocation()
print(outside, inside)
"""


def test_inside_freed_buffers_are_reused_without_faulting_pages_in_again():
    """In a fresh process (a long-lived one may hold a free hole in its heap that serves the first allocation)."""
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    outside, inside = map(int, run.stdout.split())
    assert outside > 10_000  # glibc maps 16,384 pages of 4 KiB afresh and faults each in
    assert inside < outside // 10


def test_switched_off_or_unwanted_it_changes_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_glibc", lambda: type("Libc", (), {
        "mallopt": lambda *a: calls.append(a), "malloc_trim": lambda *a: calls.append(a)})())
    with heap.reused_heap(wanted=False):
        pass
    monkeypatch.setenv(heap.VARIABLE, "0")
    with heap.reused_heap():
        pass
    assert calls == []


def test_nested_uses_restore_the_defaults_once_at_the_outermost_exit(monkeypatch):
    calls = []
    libc = type("Libc", (), {"mallopt": staticmethod(lambda *a: calls.append(("mallopt", *a))),
                             "malloc_trim": staticmethod(lambda *a: calls.append(("trim", *a)))})()
    monkeypatch.setattr(heap, "_glibc", lambda: libc)
    with heap.reused_heap():
        with heap.reused_heap():
            pass
        assert calls == [("mallopt", heap.M_MMAP_MAX, 0), ("mallopt", heap.M_TRIM_THRESHOLD, heap.KEEP_ALL)]
    assert calls[2:] == [("mallopt", heap.M_MMAP_MAX, heap.DEFAULT_MMAP_MAX),
                         ("mallopt", heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM_THRESHOLD), ("trim", 0)]
