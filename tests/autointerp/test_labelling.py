"""Labelling a mined catalogue end to end: offline, and through real loopback servers of both protocols."""

from __future__ import annotations

import copy
import json

from pathlib import Path

import pytest
import torch

from mechscope.data.harvester import HarvestConfig, windows
from mechscope.data.sources import text_source

from mechscope.autointerp.labelling import LabelConfig, catalog_record, label_features
from mechscope.features import Catalog, mine
from tests.autointerp.oracle import literal_answer
from tests.autointerp.servers import AnthropicServer, OpenAIServer
from tests.features.conftest import HOOK, MINE, TEXT, lm, sae  # noqa: F401 - fixtures

KEY = "sk-labelling-test-0123456789"


@pytest.fixture
def catalogue(lm, sae, tmp_path):  # noqa: F811 - fixtures
    """The features tests' dictionary made sparser (about 3% of tokens) and mined in windows of 8 tokens,
    so most latents have non-activating windows to score against."""
    sparse = copy.deepcopy(sae)
    ids = torch.stack(list(windows(lm, text_source(TEXT), HarvestConfig(hooks=[HOOK], context=16)))[:44])
    x = lm.run_with_cache(ids, names=[HOOK])[1][HOOK].reshape(-1, sparse.d_in)
    with torch.no_grad():
        pre = (x - sparse.b_dec) @ sparse.W_enc
        sparse.b_enc.copy_(-pre.quantile(0.97, dim=0))
    mine(lm, sparse, TEXT, tmp_path / "features", **{**MINE, "context": 8, "before": 3, "after": 2,
                                                     "min_activations": 3, "negative_pool": 48})
    return tmp_path / "features"


def run_latents(directory) -> list[int]:
    return [info.latent for info in Catalog(directory).list() if info.labels]


class _Literal:
    """Loopback servers that answer prompts as a literal reader would (see oracle.literal_answer)."""

    def answer(self, body: dict) -> str:
        messages = list(body["messages"])
        if body.get("system"):  # Anthropic sends the system prompt separately
            messages = [{"role": "system", "content": body["system"]}] + messages
        return literal_answer(messages)


class LiteralOpenAI(_Literal, OpenAIServer):
    pass


class LiteralAnthropic(_Literal, AnthropicServer):
    pass


def test_records_keep_held_out_windows_apart(catalogue):
    catalog = Catalog(catalogue)
    records = [catalog_record(catalog, info.latent) for info in catalog.list(status="ok")]
    complete = [r for r in records if r.train and r.test and r.negatives]
    assert len(complete) >= 10
    for record in complete:
        assert not {e.window for e in record.train + record.train_negatives} & \
            {e.window for e in record.test + record.negatives}


def test_offline_labels_and_embedding_scores_land_in_the_catalogue_and_resume(catalogue):
    run = label_features(catalogue, LabelConfig(max_latents=5))
    assert run.explained == 5 and run.resumed == 0 and run.scores["embedding"]["n"] == 5
    catalog = Catalog(catalogue)
    labelled = [info for info in catalog.list(status="ok") if info.labels][:5]
    assert len(labelled) == 5
    for info in labelled:
        (label,) = info.labels
        (score,) = label.scores
        assert label.explainer == "offline" and label.model == "" and label.text.startswith('"')
        assert score.scorer == "embedding" and score.ci_low <= score.value <= score.ci_high
        assert score.baseline is not None and info.best_score == score.value
    assert catalog.search(labelled[0].labels[0].text.split('"')[1])  # labels are searchable
    again = label_features(catalogue, LabelConfig(max_latents=5))
    assert again.explained == 0 and again.resumed == 5
    assert sum(len(lab.scores) for info in Catalog(catalogue).list() for lab in info.labels) == 5


@pytest.mark.parametrize("server_cls,spec,env", [(LiteralOpenAI, "openai:gpt-4o-mini", "OPENAI_API_KEY"),
                                                 (LiteralAnthropic, "anthropic:claude-3-5-haiku", "ANTHROPIC_API_KEY")])
def test_llm_labelling_through_loopback_servers_and_a_resume_makes_no_requests(catalogue, server_cls, spec, env,
                                                                              monkeypatch):
    monkeypatch.setenv(env, KEY)
    with server_cls(api_key=KEY) as server:
        base_url = server.url + "/v1" if server_cls is LiteralOpenAI else server.url
        cfg = LabelConfig(explainer=spec, scorers=("detection", "fuzzing"), base_url=base_url, max_latents=3)
        run = label_features(catalogue, cfg)
        first = server.count
        # per latent: one explanation, detection on test + negatives, fuzzing on 2 x test, each with a baseline;
        # identical prompts (two latents sharing a label and an excerpt) are asked once
        records = [catalog_record(Catalog(catalogue), i) for i in run_latents(catalogue)]
        expected = sum(1 + 2 * (len(r.test) + len(r.negatives)) + 2 * 2 * len(r.test) for r in records)
        assert run.usage["explainer"]["calls"] == expected and run.usage["explainer"]["input_tokens"] > 0
        per_latent = run.usage["explainer_per_latent"]
        assert sorted(per_latent) == [r.latent for r in records]
        assert sum(u["calls"] for u in per_latent.values()) == expected
        bodies = [json.dumps(r["body"], sort_keys=True) for r in server.requests]
        assert first == len(set(bodies)) and first > 3 * 4
        assert KEY not in json.dumps(run.to_dict())
        labels = [lab for info in Catalog(catalogue).list() for lab in info.labels]
        assert len(labels) == 3 and all(lab.model == spec and len(lab.scores) == 2 for lab in labels)
        # a resumed run with fresh clients: labels, scores and answers are all reused
        again = label_features(catalogue, cfg)
        assert server.count == first and again.resumed == 3
        # scoring with a new scorer asks only for the new work; cached explanations are not re-requested
        label_features(catalogue, LabelConfig(explainer=spec, scorers=("detection", "fuzzing"), base_url=base_url,
                                              max_latents=3, cache_dir=str(catalogue / "llm_cache")))
        assert server.count == first


def test_cli_label_json_and_dashboard_shows_labels(catalogue, capsys):
    from mechscope.cli import main

    assert main(["label", str(catalogue), "--max-latents", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["explained"] == 2 and result["scores"]["embedding"]["n"] == 2
    labels = [lab.text for info in Catalog(catalogue).list() for lab in info.labels]
    pages = "".join(p.read_text() for p in Path(result["dashboard"]).rglob("*") if p.is_file()
                    and p.suffix in (".html", ".js", ".json"))
    assert all(json.dumps(text)[1:-1] in pages or text in pages for text in labels)


def test_a_failure_part_way_keeps_the_labels_made_before_it(catalogue):
    from mechscope.autointerp.completion import Completion, LLMError

    class FailsOnThird:
        def __init__(self):
            self.calls = 0

        def complete(self, messages, latent=None, **kwargs):
            self.calls += 1
            if self.calls == 3:
                raise LLMError("server gone")
            return Completion(literal_answer(messages))

    cfg = LabelConfig(explainer="openai:m", scorers=("detection",), max_latents=5, workers=1)
    with pytest.raises(LLMError, match="server gone"):
        label_features(catalogue, cfg, client=FailsOnThird())
    assert len(run_latents(catalogue)) == 2  # the two explained before the failure are in the catalogue
    healthy = FailsOnThird()
    healthy.calls = 3  # past its failure
    run = label_features(catalogue, cfg, client=healthy)
    assert run.resumed == 2 and run.explained == 3 and len(run_latents(catalogue)) == 5
