"""The dictionary-at-a-hook binding: load, width check, splice with and without the error term."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.dictionaries.formats import save_dictionary
from mechscope.errors import MechscopeError
from tests.conftest import tiny_hf, token_batch

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def lm():
    return mechscope.load_model(tiny_hf("gpt2"), device="cpu")


def zero_decoder(d_in: int, hook: str = HOOK) -> Dictionary:
    """Reconstructs every input as b_dec = 0.5 (a constant), so the spliced model sees a constant residual."""
    d = Dictionary(DictionaryConfig(d_in, 8, "topk", k=2, hook_name=hook))
    with torch.no_grad():
        d.W_dec.zero_()
        d.b_dec.fill_(0.5)
    return d


def test_binding_loads_from_disk_and_checks_the_width(lm, tmp_path):
    save_dictionary(zero_decoder(32), tmp_path / "sae")
    bound = bind_dictionary(lm, tmp_path / "sae")
    assert (bound.hook, bound.path, bound.dictionary.d_in) == (HOOK, tmp_path / "sae", 32)
    with pytest.raises(MechscopeError, match="has width 32 .* expects d_in=16"):
        bind_dictionary(lm, Dictionary(DictionaryConfig(16, 8, "topk", k=2, hook_name=HOOK)))
    with pytest.raises(MechscopeError, match="records no hook_name"):
        bind_dictionary(lm, zero_decoder(32, hook=""))


def test_splice_replaces_the_activation_and_the_error_term_restores_it(lm):
    bound = bind_dictionary(lm, zero_decoder(32))
    ids = token_batch()
    clean = lm(ids)
    seen = {}
    with lm.hooks({HOOK: bound.splice()}):
        _, cache = lm.run_with_cache(ids, names=[HOOK])
        spliced = lm(ids)
    seen["spliced"] = cache[HOOK]
    assert torch.equal(seen["spliced"], torch.full_like(seen["spliced"], 0.5))
    assert not torch.allclose(spliced, clean)
    with lm.hooks({HOOK: bound.splice(error_term=True)}):
        torch.testing.assert_close(lm(ids), clean)
    x = torch.randn(4, 32, requires_grad=True)
    bound.reconstruct(x, error_term=True).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))  # the error is detached; the zero decoder passes nothing back
