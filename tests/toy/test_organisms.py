"""Model organisms: trained small variants pass their checks, random ones fail, directories round-trip."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

import mechscope
from mechscope.errors import OrganismError
from mechscope.models import wrap
from mechscope.tasks import logit_diff
from mechscope.toy import ORGANISMS, build_lm, load_organism, open_organism, organism_path, train_organism

NAMES = sorted(ORGANISMS)


@pytest.mark.parametrize("name", NAMES)
def test_small_organism_passes_its_check(small_organism, name):
    organism = small_organism(name)
    result = organism.check()
    assert result.passed, result
    recorded = organism.manifest["check"]
    assert recorded["passed"]  # the check at training time, on the in-memory model, agrees with the saved one
    assert all(recorded[k] == pytest.approx(v, abs=1e-4) for k, v in result.to_dict().items())


def test_organism_figures(small_organism):
    induction = small_organism("induction").check()
    assert induction.induction_score > 0.5 and induction.previous_token_score > 0.5
    assert induction.repeated_half_loss < 0.25 * induction.first_half_loss
    ioi = small_organism("ioi").check()
    assert ioi.accuracy > 0.9 and ioi.logit_diff > 2 and ioi.n_prompts == 500
    refusal = small_organism("refusal").check()
    assert refusal.harmful_refusal_rate > 0.95 and refusal.harmless_refusal_rate < 0.05
    assert small_organism("greater-than").check().prob_diff > 0.5


def test_ioi_corruption_removes_the_answer(small_organism):
    organism = small_organism("ioi")
    batch = organism.task.patching_batch(organism.model.tokenizer, 64)
    assert batch.report.kept == 64 and not batch.report.dropped
    assert logit_diff(batch.logits(organism.model), batch).mean() > 2
    assert abs(logit_diff(batch.logits(organism.model, corrupted=True), batch).mean()) < 1


@pytest.mark.parametrize("name", NAMES)
def test_untrained_models_fail_the_checks(name):
    spec = ORGANISMS[name]
    task = spec.task()
    tokenizer = task.tokenizer()
    model = wrap(build_lm(spec.sizes["small"].model, tokenizer), tokenizer, check=False)
    assert not task.check(model).passed


def test_saved_directory_is_an_ordinary_hf_model(tmp_path):
    organism = train_organism("greater-than", tmp_path / "gt", steps=30, size="small", device="cpu", progress=False)
    files = {p.name for p in (tmp_path / "gt").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "manifest.json"} <= files
    assert [p.name for p in tmp_path.iterdir()] == ["gt"]  # the temporary directory was renamed into place
    loaded = mechscope.load_model(tmp_path / "gt", device="cpu")
    prompts = ["The war lasted from the year 1732 to the year 17", "The siege lasted from the year 1250 to"]
    assert torch.equal(loaded(prompts), organism.model(prompts))
    manifest = json.loads((tmp_path / "gt" / "manifest.json").read_text())
    assert manifest["steps"] == 30 and manifest["seed"] == 0 and manifest["size"] == "small"
    assert manifest["model"] == organism.manifest["model"] and manifest["train"]["steps"] == 30
    assert {"torch", "transformers", "tokenizers", "mechscope"} <= set(manifest["versions"])
    assert manifest["train_seconds"] > 0 and set(manifest["check"]) >= {"prob_diff", "passed"}
    assert open_organism(tmp_path / "gt", device="cpu").task == organism.task


def test_failed_training_leaves_nothing(tmp_path, monkeypatch):
    def broken(*_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("mechscope.toy.organisms.save_lm", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_organism("greater-than", tmp_path / "gt", steps=2, size="small", device="cpu", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_zoo_trains_once_per_setting(small_organism, zoo_cache):
    small_organism("greater-than")
    path = organism_path("greater-than", "small")
    stamp = (path / "manifest.json").stat().st_mtime_ns
    assert path.parent == zoo_cache / "zoo" and path.name.startswith("greater-than-small-")
    assert load_organism("greater-than", "small", device="cpu").path == path
    assert (path / "manifest.json").stat().st_mtime_ns == stamp
    other = organism_path("greater-than", "small", seed=1, progress=False)
    assert other != path and json.loads((other / "manifest.json").read_text())["seed"] == 1
    assert not [p for p in (zoo_cache / "zoo").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_bad_input_is_named(tmp_path):
    with pytest.raises(OrganismError, match="unknown organism 'iio'; known organisms: greater-than, induction, ioi"):
        train_organism("iio", tmp_path / "x")
    with pytest.raises(OrganismError, match="known organisms"):
        load_organism("iio")
    with pytest.raises(OrganismError, match=r"sizes \['default', 'small'\], got 'huge'"):
        organism_path("ioi", "huge")
    with pytest.raises(OrganismError, match="positive number of training steps, got 0"):
        train_organism("ioi", tmp_path / "x", steps=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(OrganismError, match="not an empty directory"):
        train_organism("ioi", tmp_path / "full")
    with pytest.raises(OrganismError, match="not an empty directory"):
        train_organism("ioi", tmp_path / "full" / "file")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["file"]
    with pytest.raises(OrganismError, match="holds no organism"):
        open_organism(tmp_path / "full")
    (tmp_path / "full" / "manifest.json").write_text('{"organism": "ioi", "task": {"test_fracton": 0.2}}')
    with pytest.raises(OrganismError, match=r"IOITask takes settings \['test_fraction', 'check_prompts'\], "
                                            r"got \['test_fracton'\]"):
        open_organism(tmp_path / "full")


def test_a_damaged_zoo_entry_is_named_and_kept(small_organism, tmp_path, monkeypatch):
    cached = small_organism("greater-than").path
    monkeypatch.setenv("MECHSCOPE_CACHE", str(tmp_path))
    entry = tmp_path / "zoo" / cached.name
    shutil.copytree(cached, entry)
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(OrganismError, match=f"weights do not load.*remove {re.escape(str(entry))} and it will be"):
        load_organism("greater-than", "small", device="cpu")
    assert weights.stat().st_size == 100  # reported, not trained over


def test_cli_zoo_list_train_check(small_organism, tmp_path, capsys):
    from mechscope.cli import main

    paths = {name: str(small_organism(name).path) for name in NAMES}
    assert main(["zoo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["organisms"]
    assert set(listed) == set(NAMES) and all(paths[name] in entry["cached"] for name, entry in listed.items())
    assert main(["zoo", "check", "--size", "small", "--device", "cpu", "--json"]) == 0
    assert all(r["passed"] for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1]).values())
    out = tmp_path / "gt"
    assert main(["zoo", "train", "greater-than", "--out", str(out), "--size", "small", "--steps", "20",
                 "--device", "cpu", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["path"] == str(out) and trained["steps"] == 20 and "prob_diff" in trained["check"]
    assert main(["zoo", "check", str(out), "--device", "cpu", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert checked["check"]["prob_diff"] == pytest.approx(trained["check"]["prob_diff"], abs=1e-4)
    assert main(["zoo", "train", "nope", "--out", str(tmp_path / "n")]) == 2
    assert "known organisms: greater-than, induction, ioi, refusal" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_default_organism_passes_its_check(tmp_path, name):
    organism = train_organism(name, tmp_path / name, device="cpu", progress=False)
    assert organism.check().passed and open_organism(tmp_path / name, device="cpu").check().passed
    assert organism.manifest["train_seconds"] < 300
