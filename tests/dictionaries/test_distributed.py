"""DDP over 2 CPU processes (gloo) reaches the same weights as one process with the same global batch."""

from __future__ import annotations

import pytest
import torch
from torch.multiprocessing import ProcessRaisedException

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.latent_shards import spawn
from mechscope.synthetic import SyntheticFeatures

CONFIG = dict(tokens=30 * 128, batch_size=128, init_tokens=512, checkpoint_every=10**9, log_every=10)


def test_two_gloo_ranks_match_one_process(tmp_path):
    """Two ranks in a process group (as torchrun would make; latent_shards stays 1, so train wraps DDP)."""
    args = (SyntheticFeatures(128, 32, seed=2), DictionaryConfig(32, 128, "topk", k=4))
    single = train(*args, tmp_path / "one", TrainConfig(device="cpu", **CONFIG))[0]
    spawn(2, train, (*args, tmp_path / "two", TrainConfig(device="cpu", **CONFIG)))
    a, b = load_dictionary(single), load_dictionary(tmp_path / "two" / single.name)
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)


def test_ranks_split_the_batch(tmp_path):
    """The ranks above see a world of 2 (else each trains the whole batch, which matches one process as well)."""
    odd = TrainConfig(device="cpu", **{**CONFIG, "batch_size": 127})
    with pytest.raises(ProcessRaisedException, match="must divide evenly over 2 data replicas"):
        spawn(2, train, (SyntheticFeatures(128, 32, seed=2), DictionaryConfig(32, 128, "topk", k=4), tmp_path, odd))
