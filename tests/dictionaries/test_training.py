"""Training: ground-truth recovery, variant sanity, exact resume, bad data; one pass feeds a sweep."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.dictionaries import DictionaryConfig, TrainConfig, TrainingError, train
from mechscope.dictionaries.batches import BatchSource
from mechscope.dictionaries.formats import load_dictionary
from mechscope.errors import MechscopeError
from mechscope.synthetic import SyntheticFeatures, feature_recovery

DATA = SyntheticFeatures(n_features=512, d=256, active=5, seed=0)


def fvu_l0_shrink(d, x):
    with torch.no_grad():
        x_hat, codes = d(x), d.encode(x)
    return (((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()).item(), \
        (codes > 0).float().sum(-1).mean().item(), (x_hat.norm(dim=-1).mean() / x.norm(dim=-1).mean()).item()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Every variant trained side by side from ONE pass over the same synthetic stream."""
    reads = []
    source = BatchSource(256, "counted", lambda b, s: (reads.append(i) or DATA.sample(b, i)[0] for i in range(s, 10**9)))
    configs = [DictionaryConfig(256, 512, "topk", k=5), DictionaryConfig(256, 512, "batchtopk", k=5),
               DictionaryConfig(256, 512, "relu", l1_coefficient=2.0), DictionaryConfig(256, 512, "gated"),
               DictionaryConfig(256, 512, "jumprelu"), DictionaryConfig(256, 512, "matryoshka", k=5)]
    tcfg = TrainConfig(tokens=800 * 512, batch_size=512, checkpoint_every=10**9, log_every=100)
    dirs = train(source, configs, tmp_path_factory.mktemp("sweep"), tcfg)
    held_out = DATA.sample(4096, step=10**6)[0]
    return {p.name.split("_")[0]: (load_dictionary(p), p) for p in dirs}, held_out, reads


def test_one_pass_feeds_every_dictionary(sweep):
    _, _, reads = sweep
    init_batches = 16_384 // 512
    assert len(reads) == init_batches + 800  # statistics sample + one read per step, shared by six dictionaries


def test_topk_with_auxk_recovers_the_true_features(sweep):
    dictionaries, _, _ = sweep
    recovery = feature_recovery(DATA.directions, dictionaries["topk"][0].W_dec.detach())
    assert recovery["mcc"] >= 0.85 and recovery["matched"] >= 0.8


def test_variant_sanity_at_similar_sparsity(sweep):
    dictionaries, x, _ = sweep
    stats = {name: fvu_l0_shrink(d, x) for name, (d, _) in dictionaries.items()}
    assert stats["batchtopk"][0] <= stats["topk"][0]
    assert stats["relu"][2] < 0.95  # L1 shrinks the reconstruction
    assert stats["gated"][2] > 0.96 and stats["jumprelu"][2] > 0.96  # these do not
    assert all(2 <= stats[n][1] <= 12 for n in stats), stats  # comparable sparsity
    assert abs(stats["batchtopk"][1] - 5) / 5 < 0.10  # the saved threshold reproduces the training L0
    for name in ("batchtopk", "gated", "jumprelu", "matryoshka"):
        assert feature_recovery(DATA.directions, dictionaries[name][0].W_dec.detach())["mcc"] > 0.9, name


def test_outputs_are_saelens_layout_with_manifest_and_log(sweep):
    dictionaries, _, _ = sweep
    _, path = dictionaries["topk"]
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 5 and cfg["d_sae"] == 512
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["final"]["step"] == 799 and manifest["activation_scale"] > 0
    log = [json.loads(line) for line in (path / "training_log.jsonl").read_text().splitlines()]
    assert log[0]["fvu"] > log[-1]["fvu"] and not (path / "checkpoint").exists()


def _small(tmp, **kw):
    tcfg = TrainConfig(tokens=60 * 256, batch_size=256, checkpoint_every=20, log_every=10, init_tokens=1024, **kw)
    return train(SyntheticFeatures(128, 32, seed=1), [DictionaryConfig(32, 128, "topk", k=4),
                                                      DictionaryConfig(32, 64, "jumprelu")], tmp, tcfg)


def test_resume_after_interruption_is_bit_exact(tmp_path, monkeypatch):
    reference = [load_dictionary(p) for p in _small(tmp_path / "a")]
    real = SyntheticFeatures.batches

    def dies(self, batch_size, start=0, seed=0):
        for i, batch in enumerate(real(self, batch_size, start, seed)):
            if start == 0 and i == 1024 // 256 + 45:  # 45 steps in, after the checkpoint at step 40
                raise KeyboardInterrupt
            yield batch
    monkeypatch.setattr(SyntheticFeatures, "batches", dies)
    with pytest.raises(KeyboardInterrupt):
        _small(tmp_path / "b")
    assert json.loads((tmp_path / "b/topk_128_k4/checkpoint/trainer_state.json").read_text())["step"] == 40
    monkeypatch.setattr(SyntheticFeatures, "batches", real)
    resumed = [load_dictionary(p) for p in _small(tmp_path / "b")]
    for a, b in zip(reference, resumed):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name


def test_nan_activations_stop_with_the_step_named_and_checkpoint_intact(tmp_path):
    def poisoned(batch_size, start):
        for step in range(start, 10**9):
            x = torch.randn(batch_size, 16)
            if step == 30:
                x[3, 2] = float("nan")
            yield x
    source = BatchSource(16, "poisoned", poisoned)
    tcfg = TrainConfig(tokens=50 * 64, batch_size=64, checkpoint_every=10, init_tokens=256)
    with pytest.raises(TrainingError, match="step 30"):
        train(source, DictionaryConfig(16, 32, "topk", k=2), tmp_path, tcfg)
    state = json.loads((tmp_path / "topk_32_k2/checkpoint/trainer_state.json").read_text())
    assert state["step"] == 30


def test_width_mismatch_and_foreign_checkpoint_are_refused(tmp_path):
    with pytest.raises(MechscopeError, match="d_in=16 but"):
        train(SyntheticFeatures(64, 32), DictionaryConfig(16, 64, "topk", k=2), tmp_path, TrainConfig(tokens=512))
    _small(tmp_path / "run")
    broken = tmp_path / "run2/topk_128_k4/checkpoint"
    broken.mkdir(parents=True)
    (broken / "trainer_state.json").write_text("{not json")
    with pytest.raises(MechscopeError, match="unreadable"):
        _small(tmp_path / "run2")


def test_cli_trains_a_sweep_from_a_cache(minilm, tmp_path, capsys):
    from mechscope.cli import main
    from mechscope.data import harvest

    cache = harvest(minilm, "pydocs", "blocks.1.hook_resid_post", tokens=2048, out=tmp_path / "cache", context=32,
                    batch_size=16)
    assert main(["train", str(cache), "--out", str(tmp_path / "saes"), "--tokens", "4096", "--batch-size", "256",
                 "--arch", "topk", "--width", "2x", "--k", "8", "--arch", "batchtopk", "--width", "768", "--k", "8",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dictionaries"]
    assert set(result) == {"topk_768_k8", "batchtopk_768_k8"}
    d = load_dictionary(result["topk_768_k8"]["dir"])
    assert d.cfg.hook_name == "blocks.1.hook_resid_post" and d.cfg.model_name == "minilm" and d.cfg.d_in == 384
    with pytest.raises(SystemExit):
        main(["train", str(cache), "--out", str(tmp_path / "x"), "--arch", "topk", "--k", "notanumber"])


def test_wandb_gets_every_logged_record_when_asked(tmp_path, monkeypatch):
    import sys
    import types

    calls = {"init": [], "log": [], "finish": 0}

    class FakeRun:
        def log(self, record, step):
            calls["log"].append((step, record["fvu"]))

        def finish(self):
            calls["finish"] += 1
    fake = types.SimpleNamespace(init=lambda **kw: calls["init"].append(kw) or FakeRun())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    train(SyntheticFeatures(64, 16), DictionaryConfig(16, 64, "topk", k=2), tmp_path,
          TrainConfig(tokens=20 * 128, batch_size=128, log_every=5, init_tokens=256, wandb_project="proj"))
    assert calls["init"][0]["project"] == "proj" and calls["init"][0]["name"] == "topk_64_k2"
    assert [s for s, _ in calls["log"]] == [0, 5, 10, 15, 19] and calls["finish"] == 1
    log = [json.loads(line) for line in (tmp_path / "topk_64_k2/training_log.jsonl").read_text().splitlines()]
    assert [r["fvu"] for r in log] == [f for _, f in calls["log"]]


def test_trains_from_a_live_stream(minilm, tmp_path):
    from mechscope.data import stream_batches

    stream = stream_batches(minilm, "pydocs", "blocks.0.hook_resid_post", batch_size=128, buffer_tokens=1024,
                            context=32, forward_batch=8)
    path = train(stream, DictionaryConfig(384, 768, "topk", k=8), tmp_path,
                 TrainConfig(tokens=10 * 128, batch_size=128, init_tokens=128))[0]
    log = (path / "training_log.jsonl").read_text().splitlines()
    assert load_dictionary(path).cfg.d_in == 384 and json.loads(log[-1])["step"] == 9


def test_a_checkpoint_from_another_run_is_refused(tmp_path):
    from mechscope.dictionaries import Dictionary
    from mechscope.dictionaries.checkpoint import save_checkpoint

    other = Dictionary(DictionaryConfig(32, 128, "topk", k=4, aux_coefficient=0.5))
    save_checkpoint(tmp_path / "topk_128_k4/checkpoint", other, torch.optim.Adam(other.parameters()),
                    {"step": 3, "config": other.cfg.to_dict(), "train": {}},
                    {"tokens_since_fired": torch.zeros(128, dtype=torch.int64)})
    with pytest.raises(MechscopeError, match="different run"):
        train(SyntheticFeatures(128, 32), DictionaryConfig(32, 128, "topk", k=4), tmp_path,
              TrainConfig(tokens=1024, batch_size=256, init_tokens=256))
