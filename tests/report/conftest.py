"""A tiny run directory with every artefact kind the report reads: run.json, a dictionary with its eval.json,
the features fixture's mined catalogue (with personal data planted in two contexts) and its dashboard, a family
scan, an edge circuit with its faithfulness curve and a refusal steering vector with a calibrated monitor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mechscope.data.atomic import atomic_write_json
from mechscope.features.dashboard import write_dashboard
from mechscope.manifest import build_manifest, write_manifest
from mechscope.steering.exchange import write_control_vector
from tests.features.conftest import HOOK, lm, mined, sae  # noqa: F401  (fixtures)

EMAIL_TOKENS = [" mail", " jane", ".", "doe", "@", "example", ".org", " 100000", "00146"]  # a context's 9 tokens
INVALID_TOKENS = [" number", " 12345678906", " is", " not", " an", " id"]  # fails the TCKN checksum
PLANTED_LATENT = 4
PLANTED_IDS: dict[str, int] = {}
MODEL = {"name": "tiny-gpt2", "fingerprint": "0123456789abcdef", "revision": "r1", "d_vocab": 64,
         "quantization": "Q4_1 GGUF, dequantised to float32", "model_type": "gpt2", "n_layers": 2, "d_model": 32}
DICTIONARY = {"architecture": "relu", "d_sae": 48, "k": None, "hook_name": HOOK}
TRAINED = {"fvu": 0.0625, "l0": 7.5, "dead_fraction": 0.02083, "elapsed_s": 3.25, "tokens": 4096}
HELD_OUT = {"fvu": 0.0731, "l0": 7.25, "dead_fraction": 0.0, "downstream": {"ce_score_zero": 0.8125,
                                                                           "kl_score_zero": 0.75}}
SCAN = {"families": [
    {"name": "deception", "description": "lying, misleading", "matches": [
        {"latent": 4, "label": "lies and deceit", "match": "both", "similarity": 0.6875, "score": 0.71875,
         "examples": ["he said he never lied", "a deceptive answer"]}],
     "probe": {"hook": HOOK, "layer": 1, "auroc": 0.875, "n_positive": 16, "n_negative": 16, "method": "mean_diff"}},
    {"name": "personal data", "description": "PII", "matches": [
        {"latent": 9, "label": "contact details", "match": "fts", "similarity": None, "score": 0.5,
         "examples": ["write to bob.smith@example.com today"]}],
     "probe": {"hook": HOOK, "layer": 1, "auroc": 0.5625, "n_positive": 8, "n_negative": 8, "method": "mean_diff"}},
]}
CURVE = {"selection": "topn", "ablation": "patching", "metric": "logit_diff", "model_metric": 2.5,
         "empty_metric": 0.25, "cpr": 0.8125, "cmd": 0.1875,
         "points": [{"budget": 0.1, "edges": 10, "edges_after_pruning": 9, "metric": 1.5, "faithfulness": 0.5625},
                    {"budget": 20, "edges": 20, "edges_after_pruning": 20, "metric": 2.25, "faithfulness": 0.875}]}
GGUF_CALIBRATION = {"auroc": 0.96875, "tpr_at_target_fpr": 0.8125, "target_fpr": 0.01, "threshold": 12.5,
                    "rule": "fpr", "tpr": 0.8125, "fpr": 0.0, "n_positive": 48, "n_negative": 60}
CALIBRATION = {"auroc": 0.9375, "tpr_at_target_fpr": 0.6875, "target_fpr": 0.01, "threshold": 1.25, "rule": "fpr",
               "tpr": 0.6875, "fpr": 0.0, "n_positive": 32, "n_negative": 32}


def plant(examples: Path, latent: int, tokens: list[str], rank: int = 0) -> None:
    """Put `tokens` at the start of one top-activation context of `latent` (its length unchanged), with ids of
    their own above the vocabulary so every id still names one string."""
    table = pq.read_table(examples)
    rows = table.to_pylist()
    row = next(r for r in rows if r["latent"] == latent and r["kind"] == "top" and r["rank"] == rank)
    row["tokens"] = tokens + row["tokens"][len(tokens):]
    row["token_ids"] = [PLANTED_IDS.setdefault(t, 1000 + len(PLANTED_IDS)) for t in tokens] + \
        row["token_ids"][len(tokens):]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), examples)


def _stage(kind: str, artefacts: dict, metrics: dict | None = None) -> dict:
    return {"kind": kind, "status": "done", "config_sha256": "0" * 64, "started": "2026-11-30T05:00:00+00:00",
            "finished": "2026-11-30T05:01:00+00:00", "seconds": 60.5, "artefacts": artefacts,
            "metrics": metrics or {}, "error": None}


def build_run(root: Path, catalogue: Path) -> Path:
    sae_dir = root / "saes" / "relu_48"
    write_manifest(sae_dir.mkdir(parents=True) or sae_dir, build_manifest(
        "mechscope.dictionary", model=MODEL, config=DICTIONARY, name="relu_48", final=TRAINED))
    atomic_write_json(sae_dir / "eval.json", {"model": "tiny-gpt2", "hook": HOOK, "architecture": "relu",
                                              "d_sae": 48, **HELD_OUT, "manifest": build_manifest(
        "mechscope.eval", model=MODEL, config={"tokens": 2048}, inputs={"corpus": {"name": "sotu"}})})
    features = root / "features"
    shutil.copytree(catalogue, features)
    plant(features / "examples.parquet", PLANTED_LATENT, EMAIL_TOKENS)
    plant(features / "examples.parquet", PLANTED_LATENT, INVALID_TOKENS, rank=1)
    write_dashboard(features)
    scan = root / "scan"
    write_manifest(scan.mkdir() or scan, build_manifest("mechscope.family_scan", model=MODEL))
    atomic_write_json(scan / "scan.json", SCAN)
    circuit = root / "circuits" / "ioi"
    circuit.mkdir(parents=True)
    atomic_write_json(circuit / "circuit.json", {"graph": {"n_edges": 70}, "edges": ["a->b", "b->c", "a->c"],
                                                 "nodes": ["a", "b", "c"]})
    atomic_write_json(circuit / "curve.json", CURVE)
    write_manifest(circuit, build_manifest("mechscope.edge_circuit", model=MODEL, info={
        "method": "eap", "metric": "logit_diff", "prompts": 16, "clean_metric": 2.5, "corrupted_metric": 0.25,
        "graph": {"n_edges": 70}}))
    steering = root / "steering"
    write_manifest(steering.mkdir() or steering, build_manifest(
        "mechscope.steering_vector", model=MODEL, hook="blocks.{layer}.hook_resid_pre", method="refusal_direction",
        layers=[1], metrics={"baseline": {"harmful_refusal_score": 4.5, "harmless_refusal_score": -6.25},
                             "selected": {"layer": 1, "refusal_score": -3.75, "steering_score": 3.5, "kl": 0.0123}},
        metadata={"monitor": {"hook": "blocks.1.hook_resid_post", "layer": 1, "calibration": CALIBRATION}}))
    monitor = write_control_vector(root / "monitor" / "monitor.gguf", {1: torch.ones(32)}, "gpt2", {
        "monitor": {"hook": "blocks.1.hook_resid_post", "layer": 1, "calibration": GGUF_CALIBRATION},
        "model": MODEL})
    atomic_write_json(root / "run.json", {
        "format": "mechscope.run", "format_version": 1, "config_file": "audit.toml",
        "config": {"purpose": "screen a support chatbot for jailbreaks"}, "config_sha256": "f" * 64,
        "stages": {"train": _stage("train", {"sae": "saes/relu_48"}, {"fvu": 0.0625}),
                   "mine": _stage("mine", {"catalogue": "features"}),
                   "scan": _stage("scan", {"scan": "scan"}),
                   "circuit": _stage("circuit", {"ioi": "circuits/ioi/circuit.json"}),  # a file artefact
                   "monitor": _stage("monitor", {"monitor": str(monitor.relative_to(root))}),
                   "steer": _stage("steer", {"refusal": "steering"})}})
    return root


@pytest.fixture(scope="module")
def run_dir(mined, tmp_path_factory) -> Path:
    """A fresh copy of the tiny run for each test module (tests that redact get their own)."""
    return build_run(tmp_path_factory.mktemp("run"), mined[0])


def fresh_run(mined, tmp_path: Path) -> Path:
    return build_run(tmp_path / "run", mined[0])

