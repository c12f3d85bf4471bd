"""The variant contract: a new variant is one class plus one registry entry; no variant mutates its config;
decode depends on its arguments only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.dictionaries.variants import VARIANTS, StepContext, Variant
from mechscope.dictionaries.variants.base import dense_terms
from mechscope.errors import MechscopeError
from mechscope.evaluation.sweep import grid
from mechscope.synthetic import SyntheticFeatures

DATA = SyntheticFeatures(n_features=64, d=32, active=3, seed=0)


class ShiftedReLU(Variant):
    """A variant only this test knows: codes = ReLU(pre - shift), a learned per-latent shift, plain L1."""

    hyperparameters = ("l1_coefficient",)
    sweep_axis = "l1"
    saved_tensors = ("shift",)

    @classmethod
    def validate_config(cls, cfg) -> None:
        if cfg.l1_coefficient <= 0:
            raise MechscopeError(f"shifted needs l1_coefficient > 0, got {cfg.l1_coefficient}")

    @classmethod
    def sweep_overrides(cls, value: float) -> dict:
        return {"l1_coefficient": value}

    def knob_label(self) -> str:
        return f"l1-{self.cfg.l1_coefficient:g}"

    def add_parameters(self, d) -> None:
        d.shift = nn.Parameter(torch.zeros(d.d_sae, device=d.W_enc.device))

    def init_parameters(self, d) -> None:
        d.shift.data.fill_(0.05)

    def activate(self, d, x_in, pre):
        return (pre - d.shift).relu()

    def loss(self, d, x_in, ctx: StepContext):
        codes = self.activate(d, x_in, d.pre_activations(x_in))
        sparsity = self.cfg.l1_coefficient * codes.sum(-1).mean()
        return dense_terms(d, x_in, codes, codes @ d.W_dec + d.b_dec, sparsity, ctx)


@pytest.fixture
def shifted(monkeypatch):
    monkeypatch.setitem(VARIANTS, "shifted", ShiftedReLU)


def test_a_registered_variant_trains_saves_loads_and_sweeps(shifted, tmp_path):
    with pytest.raises(MechscopeError, match="l1_coefficient > 0, got -1"):
        DictionaryConfig(32, 64, "shifted", l1_coefficient=-1.0)
    configs = grid(32, 64, ["shifted", "topk"], l0s=[3], l1s=[0.05, 0.5])
    assert [(c.architecture, c.l1_coefficient if c.architecture == "shifted" else c.k) for c in configs] == \
        [("shifted", 0.05), ("shifted", 0.5), ("topk", 3)]
    dirs = train(DATA, configs, tmp_path, TrainConfig(tokens=300 * 256, batch_size=256, log_every=100))
    assert [p.name for p in dirs] == ["shifted_64_l1-0.05", "shifted_64_l1-0.5", "topk_64_k3"]
    x = DATA.sample(2048, step=10**6)[0]
    fvu = {}
    for path in dirs[:2]:
        loaded = load_dictionary(path)
        assert isinstance(loaded.variant, ShiftedReLU)
        assert not torch.allclose(loaded.shift, torch.full((64,), 0.05))  # the learned shift came back from disk
        with torch.no_grad():
            fvu[path.name] = ((loaded(x) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
    # the weak penalty reconstructs the synthetic features well; ten times the penalty costs reconstruction
    assert fvu["shifted_64_l1-0.05"] < 0.1 and fvu["shifted_64_l1-0.5"] > 1.5 * fvu["shifted_64_l1-0.05"]


def _config(arch: str, **kw) -> DictionaryConfig:
    return DictionaryConfig(32, 64, arch, k=4, **kw)


@pytest.mark.parametrize("arch", sorted(VARIANTS))
@pytest.mark.parametrize("norm", ["none", "layer_norm"])
def test_decode_depends_only_on_its_arguments(arch, norm):
    torch.manual_seed(0)
    d = Dictionary(_config(arch, normalize_activations=norm))
    with torch.no_grad():
        d.b_dec.normal_()
    x1, x2 = torch.randn(5, 32) * 3 + 1, torch.randn(5, 32) * 0.5 - 2
    codes, norm1 = d.encode(x1), d.input_norm(x1)
    first = d.decode(codes, norm1)
    d.encode(x2)
    torch.testing.assert_close(d.decode(codes, norm1), first)
    torch.testing.assert_close(d(x1), first)  # forward = decode(encode(x), input_norm(x))
    assert (norm1 is None) == (norm == "none")


@pytest.mark.parametrize("arch", sorted(VARIANTS))
def test_no_variant_or_trainer_mutates_the_config_it_was_given(arch, tmp_path):
    extra = {"relu_form": "classic"} if arch == "relu" else {}
    configs = [_config(arch, **extra), _config(arch)]
    before = [c.to_dict() for c in configs]
    d = Dictionary(configs[0])
    d.variant.loss(d, DATA.sample(16, 0)[0], StepContext(variance=1.0))["total"].backward()
    train(DATA, configs, tmp_path, TrainConfig(tokens=4 * 64, batch_size=64, resample_fractions=[0.5]))
    assert [c.to_dict() for c in configs] == before


def test_architecture_switches_live_only_in_file_format_code():
    root = Path(mechscope.__file__).parent
    switch = re.compile(r"\barch(itecture)?\s*(==|!=|in\s*\()")
    offenders = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if "formats" not in p.relative_to(root).parts and switch.search(p.read_text()))
    assert offenders == []
