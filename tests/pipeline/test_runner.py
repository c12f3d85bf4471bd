"""The runner on a tiny pipeline (the induction organism, a harvest, a TopK SAE, a toy model): reruns skip finished
stages, a changed key reruns its stage and what reads it, an interrupted stage resumes where it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest

from mechscope.cli import main
from mechscope.pipeline import STAGES, parse_config, run_pipeline
from mechscope.pipeline.config import config_hash

TINY = [
    {"name": "organism", "kind": "organism"},
    {"name": "harvest", "kind": "harvest", "model": "organism:induction:small", "source": "task", "task_texts": 200,
     "hooks": ["blocks.0.hook_resid_post"], "tokens": 2048, "context": 32, "dtype": "float32"},
    {"name": "train", "kind": "train", "activations": "harvest", "tokens": 2048, "batch_size": 256, "k": 4},
    {"name": "toy", "kind": "superposition",
     "toy": {"n_features": 5, "m": 2, "feature_probability": [1.0, 0.05], "steps": 200}},
]


def counting(calls: Counter, fail: dict | None = None) -> dict:
    """The stage registry with each function counting its calls; `fail` maps a kind to a function run instead
    on its first call."""
    def wrap(kind, run):
        def counted(cfg, ctx):
            calls[kind] += 1
            if fail and kind in fail and calls[kind] == 1:
                return fail[kind](cfg, ctx)
            return run(cfg, ctx)
        return counted
    return {kind: replace(entry, run=wrap(kind, entry.run)) for kind, entry in STAGES.items()}


def config(**changes):
    stages = [{**stage, **changes.get(stage["name"], {})} for stage in TINY]
    return parse_config({"pipeline": {"name": "tiny"}, "stage": stages})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run of the tiny pipeline and the calls it made."""
    out, calls = tmp_path_factory.mktemp("run"), Counter()
    run_pipeline(config(), out, registry=counting(calls))
    return out, calls


def test_a_run_records_every_stage_in_order_with_checksums(finished):
    out, calls = finished
    state = json.loads((out / "run.json").read_text())
    assert state["format"] == "mechscope.run" and list(state["stages"]) == [s["name"] for s in TINY]
    assert state["config_sha256"] == config_hash(state["config"])
    assert calls == Counter(organism=1, harvest=1, superposition=1, train=1)
    train = state["stages"]["train"]
    assert train["status"] == "done" and train["metrics"]["topk_256_k4.l0"] == pytest.approx(4.0)
    assert (out / train["artefacts"]["topk_256_k4"] / "cfg.json").is_file()
    assert json.loads((out / "train" / "manifest.json").read_text())["format"] == "mechscope.pipeline_stage"


def test_a_rerun_skips_every_finished_stage_without_calling_it(finished):
    out, _ = finished
    calls = Counter()
    result = run_pipeline(config(), out, registry=counting(calls))
    assert not calls and result.ran == [] and result.skipped == [s["name"] for s in TINY]
    assert {r["status"] for r in json.loads((out / "run.json").read_text())["stages"].values()} == {"skipped"}


def test_a_changed_key_reruns_its_stage_and_the_stages_downstream_only(finished, tmp_path):
    out, calls = finished, Counter()
    result = run_pipeline(config(train={"k": 8}), out[0], registry=counting(calls))
    assert result.ran == ["train"] and calls == Counter(train=1)
    calls.clear()
    result = run_pipeline(config(train={"k": 8}, harvest={"tokens": 1024}), out[0], registry=counting(calls))
    assert result.ran == ["harvest", "train"] and calls == Counter(harvest=1, train=1)
    calls.clear()
    result = run_pipeline(config(train={"k": 8}, harvest={"tokens": 1024}), out[0], registry=counting(calls),
                          force=["toy"])
    assert result.ran == ["toy"]


def test_a_missing_artefact_reruns_its_stage(finished):
    out, _ = finished
    state = json.loads((out / "run.json").read_text())
    (out / state["stages"]["toy"]["artefacts"]["toy-model plot"]).unlink()
    calls = Counter()
    assert run_pipeline(config(train={"k": 8}, harvest={"tokens": 1024}), out, registry=counting(calls)).ran == ["toy"]


def test_a_harvest_interrupted_mid_stage_resumes_and_finished_stages_are_not_redone(tmp_path):
    def interrupted(cfg, ctx):  # half the harvest lands on disk, then the process is interrupted
        STAGES["harvest"].run(replace(cfg, tokens=cfg.tokens // 2), ctx)
        raise KeyboardInterrupt

    calls = Counter()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config(), tmp_path, registry=counting(calls, fail={"harvest": interrupted}))
    state = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert state["organism"]["status"] == "done" and state["harvest"]["status"] == "failed"
    cache = tmp_path / "harvest" / "activations"
    first = json.loads((cache / "manifest.json").read_text())["shards"]
    assert [s["tokens"] for s in first] == [1024]

    result = run_pipeline(config(), tmp_path, registry=counting(calls))
    assert result.skipped == ["organism"] and result.ran == ["harvest", "train", "toy"]
    assert calls == Counter(organism=1, harvest=2, train=1, superposition=1)
    shards = json.loads((cache / "manifest.json").read_text())["shards"]
    assert shards[0] == first[0] and sum(s["tokens"] for s in shards) == 2048  # the first shard kept, not redone


SCRIPT = """
import os, sys
from dataclasses import dataclass
from pathlib import Path
from mechscope.pipeline import STAGES, StageKind, StageOutcome, parse_config, run_pipeline
from mechscope.pipeline.config import stage_input

@dataclass
class Step:
    after: str = stage_input()
    die: bool = False

def step(cfg, ctx):
    marks = Path(ctx.run_dir).parent / "calls.txt"
    marks.write_text(marks.read_text() + ctx.name + "\\n" if marks.exists() else ctx.name + "\\n")
    (ctx.dir / "out.txt").write_text(ctx.name)
    if cfg.die and not (ctx.run_dir.parent / "died").exists():
        (ctx.run_dir.parent / "died").touch()
        os._exit(9)  # killed mid-stage: no chance to record anything
    return StageOutcome({"out": ctx.dir / "out.txt"}, {"n": 1})

config = parse_config({"stage": [{"name": "a", "kind": "step"}, {"name": "b", "kind": "step", "after": "a",
                       "die": True}, {"name": "c", "kind": "step", "after": "b"}]}, registry={"step": StageKind(Step, step)})
run_pipeline(config, sys.argv[1], registry={"step": StageKind(Step, step)})
"""


def test_a_process_killed_mid_stage_leaves_it_running_and_the_rerun_redoes_only_it(tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(SCRIPT)
    run = [sys.executable, str(script), str(tmp_path / "run")]
    assert subprocess.run(run, capture_output=True).returncode == 9
    state = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]
    assert state["a"]["status"] == "done" and state["b"]["status"] == "running" and "c" not in state
    assert subprocess.run(run, capture_output=True).returncode == 0
    assert (tmp_path / "calls.txt").read_text().split() == ["a", "b", "b", "c"]
    state = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]
    assert [r["status"] for r in state.values()] == ["skipped", "done", "done"]


def test_the_cli_runs_a_config_file_and_reports_skips(tmp_path, capsys):
    path = tmp_path / "toy.toml"
    path.write_text('[pipeline]\nname = "toy"\n\n[[stage]]\nname = "toy"\nkind = "superposition"\n'
                    'toy = {n_features = 5, m = 2, feature_probability = [1.0], steps = 100}\n')
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["ran"] == ["toy"]
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "skipped (up to date)" in printed and json.loads(printed.splitlines()[-1])["skipped"] == ["toy"]
    assert main(["run", str(path), "--only", "nope"]) == 2


def test_only_runs_the_named_stages_and_leaves_the_others_as_they_were(finished):
    out, _ = finished
    calls = Counter()
    result = run_pipeline(config(train={"k": 2}), out, registry=counting(calls), only=["toy"])
    assert result.ran == [] and result.skipped == ["toy"] and not calls  # train's change waits for a full run
    assert json.loads((out / "run.json").read_text())["stages"]["train"]["status"] in ("done", "skipped")


def test_a_train_stage_loads_a_dictionary_file_of_another_format_unchanged(finished, tmp_path):
    import torch

    from mechscope.dictionaries.formats import convert, load_dictionary

    out, _ = finished
    trained = next(p for p in (out / "train" / "runs").iterdir() if (p / "cfg.json").is_file())
    foreign = convert(trained, tmp_path / "as-sparsify", to="sparsify")
    result = run_pipeline(parse_config({"stage": [{"name": "public", "kind": "train", "load": str(foreign)}]}),
                          tmp_path / "run")
    loaded = load_dictionary(tmp_path / "run" / result.stages["public"]["artefacts"]["loaded"])
    x = torch.randn(64, loaded.cfg.d_in)
    assert torch.allclose(loaded.encode(x), load_dictionary(trained).encode(x), atol=1e-5)
