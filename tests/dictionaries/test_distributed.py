"""DDP over 2 CPU processes (gloo) reaches the same weights as one process with the same global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.synthetic import SyntheticFeatures

CONFIG = dict(tokens=30 * 128, batch_size=128, init_tokens=512, checkpoint_every=10**9, log_every=10)


def _worker(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        train(SyntheticFeatures(128, 32, seed=2), DictionaryConfig(32, 128, "topk", k=4), out,
              TrainConfig(device="cpu", **CONFIG))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process(tmp_path):
    single = train(SyntheticFeatures(128, 32, seed=2), DictionaryConfig(32, 128, "topk", k=4), tmp_path / "one",
                   TrainConfig(device="cpu", **CONFIG))[0]
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "two")), nprocs=2, join=True,
                       start_method="spawn")
    a, b = load_dictionary(single), load_dictionary(tmp_path / "two" / single.name)
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
