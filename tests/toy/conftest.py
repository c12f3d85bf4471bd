"""A private zoo cache for the test session: each small organism trains at most once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MECHSCOPE_CACHE", str(root))
        yield root


@pytest.fixture(scope="session")
def small_organism(zoo_cache):
    """`small_organism(name)`: the small variant of an organism, trained on first use and then shared."""
    from mechscope.toy import load_organism

    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_organism(name, "small", device="cpu")
        return loaded[name]

    return get
