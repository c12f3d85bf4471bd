"""A private zoo cache for the test session: each small organism trains at most once per session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-cache")
    saved = os.environ.get("MECHSCOPE_CACHE")
    os.environ["MECHSCOPE_CACHE"] = str(root)
    yield root
    if saved is None:
        os.environ.pop("MECHSCOPE_CACHE")
    else:
        os.environ["MECHSCOPE_CACHE"] = saved


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
