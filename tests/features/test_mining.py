"""The mining pass against a brute-force pass over the same windows: exact top-k, counts, histograms,
contexts, samples, splits and negatives; a cache mines to the same catalogue; co-firing neighbours."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from mechscope.data import harvest
from mechscope.features import Catalog, mine
from mechscope.features.hashing import is_test_window
from tests.features.conftest import DEAD, MINE, OPPOSITE, RARE, TEXT, TWIN


def table(mined):
    return pq.read_table(mined[0] / "examples.parquet").to_pandas()


def test_top_k_are_exactly_the_k_largest_activations(mined, reference):
    examples = table(mined)
    top = examples[examples.kind == "top"]
    for latent in range(reference.codes.shape[1]):
        column = reference.codes[:, latent]
        firing = (column > 0).nonzero().squeeze(1)
        best = firing[column[firing].argsort(descending=True)][: MINE["top_k"]]
        mine_rows = top[top.latent == latent]
        assert list(mine_rows["rank"]) == list(range(len(best)))
        np.testing.assert_allclose(mine_rows.activation.to_numpy(), column[best].numpy(), rtol=1e-5)
        for row in mine_rows.itertuples():  # the very tokens (the repetitive corpus makes exact ties)
            at = ((reference.window == row.window) & (reference.position == row.position)).nonzero().item()
            assert column[at].item() == pytest.approx(row.activation, rel=1e-5)
        assert len(set(zip(mine_rows.window, mine_rows.position))) == len(best)


def test_density_histogram_and_extremes_are_exact(mined, reference):
    catalog = Catalog(mined[0])
    edges = torch.tensor(catalog.histogram_edges, dtype=torch.float32)
    tokens = reference.codes.shape[0]
    assert mined[1].tokens == tokens == catalog.manifest["tokens"]
    for latent in range(reference.codes.shape[1]):
        values = reference.codes[:, latent][reference.codes[:, latent] > 0]
        info = catalog.get(latent)
        assert info.count == len(values) and info.density == len(values) / tokens
        counts = torch.bincount(torch.bucketize(values, edges, right=True), minlength=len(edges) + 1)
        stored = torch.zeros_like(counts)
        stored[info.histogram["first"]:info.histogram["first"] + len(info.histogram["counts"])] = torch.tensor(
            info.histogram["counts"], dtype=counts.dtype)
        assert torch.equal(stored, counts)
        if len(values):
            assert info.max_activation == pytest.approx(values.max().item(), rel=1e-5)
            assert info.min_activation == pytest.approx(values.min().item(), rel=1e-5)
            assert info.mean_activation == pytest.approx(values.double().mean().item(), rel=1e-5)


def test_contexts_hold_the_latents_activation_at_every_token(mined, reference, lm):
    examples = table(mined)
    for row in examples.sample(200, random_state=0).itertuples():
        span = reference.full[row.window][row.start:row.start + len(row.activations), row.latent]
        np.testing.assert_allclose(row.activations, span.numpy(), rtol=1e-5, atol=1e-7)
        assert row.max_activation == pytest.approx(max(row.activations), abs=1e-7)
        assert lm.to_str_tokens(torch.tensor(row.token_ids)) == list(row.tokens)
        assert len(row.tokens) == MINE["before"] + 1 + MINE["after"]
        if row.kind != "random_negative":
            assert row.activations[row.position - row.start] == pytest.approx(row.activation, rel=1e-5)


def test_samples_are_distinct_activations_of_their_split_in_quantile_bins(mined, reference):
    examples = table(mined)
    samples = examples[examples.kind == "quantile"]
    test_window = is_test_window(reference.window.numpy(), MINE["test_fraction"])
    for (latent, split), rows in samples.groupby(["latent", "split"], observed=True):
        column = reference.codes[:, latent].numpy()
        in_split = (column > 0) & (test_window == (split == "test"))
        assert len(rows) == min(MINE["samples"], in_split.sum())
        assert len(set(zip(rows.window, rows.position))) == len(rows)
        where = {(int(w), int(p)): i for i, (w, p) in enumerate(zip(reference.window, reference.position))}
        for row in rows.itertuples():
            i = where[(row.window, row.position)]
            assert in_split[i] and row.activation == pytest.approx(column[i], rel=1e-5)
            exact = (column[column > 0] < column[i]).mean()  # its true quantile among all activations
            assert abs(row.quantile_bin - exact * 10) <= 1.5


def test_splits_are_disjoint_by_window_and_negatives_never_fire(mined, reference):
    examples = table(mined)
    assert (examples.split == np.where(is_test_window(examples.window.to_numpy(), MINE["test_fraction"]),
                                       "test", "train")).all()
    assert not set(examples[examples.split == "train"].window) & set(examples[examples.split == "test"].window)
    negatives = examples[examples.kind == "random_negative"]
    assert set(negatives.split) == {"train", "test"}
    for row in negatives.itertuples():
        assert not reference.full[row.window][:, row.latent].any()
        assert row.activation == 0 and not any(row.activations)
    per_latent = negatives.groupby(["latent", "split"], observed=True).size()
    assert per_latent.max() == MINE["negatives"]


def test_latents_with_too_few_activations_are_listed(mined, reference):
    catalog = Catalog(mined[0])
    counts = (reference.codes > 0).sum(0)
    assert catalog.too_few() == {"dead": (counts == 0).nonzero().squeeze(1).tolist(),
                                 "rare": ((counts > 0) & (counts < 10)).nonzero().squeeze(1).tolist()}
    assert DEAD in catalog.too_few()["dead"] and RARE in catalog.too_few()["rare"]
    assert mined[1].dead == 1 and catalog.get(DEAD).status == "dead" and catalog.examples(DEAD, kind="top") == []
    assert len(catalog) == 48  # no latent is dropped


def test_mining_a_cache_gives_the_same_catalogue(lm, sae, mined, tmp_path):
    cache = harvest(lm, TEXT, [sae.cfg.hook_name], tokens=MINE["tokens"], out=tmp_path / "cache", context=16,
                    batch_size=4, shard_mb=0)  # a shard per batch: window numbers must run on across shards
    assert len(list(cache.glob("shard_*"))) > 10
    again = mine(lm, sae, cache, tmp_path / "from-cache", **MINE)
    assert (again.tokens, again.windows) == (mined[1].tokens, mined[1].windows)
    assert table(mined).equals(pq.read_table(tmp_path / "from-cache/examples.parquet").to_pandas())
    first, second = Catalog(mined[0]), Catalog(tmp_path / "from-cache")
    assert [i.__dict__ for i in first.list()] == [i.__dict__ for i in second.list()]


def test_cofiring_neighbours_know_twins_and_opposites(mined, reference):
    catalog = Catalog(mined[0])
    twin = catalog.get(0).cooccurrence_neighbours
    assert twin[0] == (TWIN, 1.0)
    assert OPPOSITE not in [j for j, _ in twin]
    fires = (reference.codes > 0).float()
    inter = fires.T @ fires
    union = fires.sum(0)[:, None] + fires.sum(0)[None, :] - inter
    exact = (inter / union.clamp_min(1)).numpy()
    errors = [abs(value - exact[i, j]) for i in range(40) for j, value in catalog.get(i).cooccurrence_neighbours]
    assert np.mean(errors) < 0.06 and max(errors) < 0.25
