"""Resuming a recorded forward pass: the same output as the full forward, from any block and position."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import MechscopeError
from tests.conftest import token_batch


def test_resuming_from_any_block_and_position_reproduces_the_full_forward(family_model):
    name, _, model = family_model
    tokens = token_batch(batch=2, pos=7, seed=3)
    mask = torch.ones_like(tokens)
    mask[1, 5:] = 0  # one right-padded row
    full = model(tokens, mask)
    run = model.record(tokens, mask)
    # BERT is bidirectional; Mistral (sliding_window 4096 by default) and Gemma keep sliding-window caches
    causal_plain_kv = name not in ("bert", "mistral", "gemma2", "gemma3")
    assert run.resumes_positions == causal_plain_kv
    positions = (0, 3, 6) if run.resumes_positions else (0,)
    for layer in range(model.n_layers):
        for pos in positions:
            resumed = model.resume(run, 3, layer, pos)
            assert resumed.shape == (6, *full.shape[1:])
            for copy in resumed.split(2):
                torch.testing.assert_close(copy, full, atol=1e-5, rtol=1e-5)
            at = model.resume(run, 2, layer, pos, outputs_at=[1, 4, 6])
            torch.testing.assert_close(at, full[:, [1, 4, 6]].repeat(2, 1, 1), atol=1e-5, rtol=1e-5)


def test_only_the_blocks_from_the_resumed_one_compute_and_the_model_is_left_as_it_was(family_model):
    _, _, model = family_model
    tokens = token_batch(batch=2, pos=5, seed=4)
    run = model.record(tokens)
    blocks = model.root.get_submodule(model.family.layers)
    called: list[int] = []
    handles = [block.get_submodule(model.family.attn_core).register_forward_pre_hook(
        lambda *_, i=i: called.append(i)) for i, block in enumerate(blocks)]
    try:
        model.resume(run, 2, model.n_layers - 1, 0)
        resumed, called[:] = list(called), []
        model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    assert resumed == [model.n_layers - 1]
    assert called == list(range(model.n_layers))


def test_resuming_outside_the_model_is_named(family_model):
    _, _, model = family_model
    run = model.record(token_batch(batch=1, pos=4))
    with pytest.raises(MechscopeError, match="layer must be in"):
        model.resume(run, 1, model.n_layers, 0)
    with pytest.raises(MechscopeError, match="pos must be in|cannot resume at a position"):
        model.resume(run, 1, 0, 4)
