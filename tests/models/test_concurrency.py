"""One HookedModel serving several threads: each call sees its own hooks and nobody else's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

import mechscope
from tests.conftest import tiny_hf, token_batch

N_THREADS = 4
HOOK = "blocks.1.hook_resid_post"


def _adding(constant: float, seen: list[int]):
    """A hook adding `constant` that records which thread ran it and yields the GIL mid-forward."""
    def hook(act, name):
        seen.append(threading.get_ident())
        time.sleep(0.002)
        return act + constant
    return hook


def _plain(model, tokens):
    """A job calling the model without hooks a few times."""
    def job():
        with torch.no_grad():
            return [model(tokens) for _ in range(6)]
    return job


def _run_together(jobs) -> list:
    """Run the jobs on their own threads, released at the same moment; their results in order."""
    barrier = threading.Barrier(len(jobs))

    def start(job):
        barrier.wait()
        return job()
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(start, jobs))


def test_threads_with_different_hooks_get_their_solo_outputs_and_plain_calls_see_no_hooks():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    tokens = token_batch()
    with torch.no_grad():
        clean = model(tokens)
        solo = []
        for i in range(N_THREADS):
            with model.hooks({HOOK: lambda act, name, c=float(i + 1): act + c}):
                solo.append(model(tokens))
        solo_generated = model.generate(tokens, max_new_tokens=4, eos_token_ids=(),
                                        hooks={HOOK: lambda act, name: act + 5.0}).tokens
    seen: list[list[int]] = [[] for _ in range(N_THREADS + 1)]

    def hooked(i):
        def job():
            outputs = []
            for _ in range(3):
                with model.hooks({HOOK: _adding(float(i + 1), seen[i])}), torch.no_grad():
                    outputs.append((threading.get_ident(), model(tokens)))
            return outputs
        return job

    def generating():
        return [(threading.get_ident(), model.generate(tokens, max_new_tokens=4, eos_token_ids=(),
                                                       hooks={HOOK: _adding(5.0, seen[N_THREADS])}).tokens)]

    jobs = [hooked(i) for i in range(N_THREADS)] + [generating, _plain(model, tokens), _plain(model, tokens)]
    results = _run_together(jobs)
    for i in range(N_THREADS):
        assert all(torch.equal(out, solo[i]) for _, out in results[i]), i
        assert set(seen[i]) == {results[i][0][0]}  # the hook ran only in the thread that attached it
    (generator_thread, generated), = results[N_THREADS]
    assert generated == solo_generated and set(seen[N_THREADS]) == {generator_thread}
    assert all(torch.equal(out, clean) for out in results[-1] + results[-2])


def test_a_pattern_hook_in_one_thread_never_switches_attention_under_another():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    tokens = token_batch()
    implementation = model.hf.config._attn_implementation
    with torch.no_grad():
        clean = model(tokens)
    seen: list[int] = []

    def with_patterns():
        for _ in range(3):
            with model.hooks({"blocks.0.attn.hook_pattern": _adding(0.0, seen)}), torch.no_grad():
                model(tokens)
        return threading.get_ident()

    pattern_thread, *plain_runs = _run_together([with_patterns, _plain(model, tokens), _plain(model, tokens)])
    assert set(seen) == {pattern_thread}
    assert all(torch.equal(out, clean) for runs in plain_runs for out in runs)
    assert model.hf.config._attn_implementation == implementation
