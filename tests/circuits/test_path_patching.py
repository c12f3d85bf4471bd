"""Path patching: identities with activation patching and the direct path, and the planted circuit's edges."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.circuits import activation_patching
from mechscope.circuits.edge_truth import edge_roc_auc
from mechscope.circuits.path_patching import path_edge_scores, path_patching
from mechscope.circuits.task_runs import task_metric
from mechscope.errors import MechscopeError
from mechscope.tasks import make_task
from mechscope.toy.handbuilt import HandBuiltConfig, handbuilt_circuit, handbuilt_model
from mechscope.toy.induction_circuit import induction_circuit
from tests.circuits.test_patching import last_token_metric
from tests.conftest import tiny_hf, token_batch


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny(request):
    model = mechscope.load_model(tiny_hf(request.param), device="cpu")
    clean, corrupted = token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2)
    return model, clean, corrupted, last_token_metric(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))


def test_last_layer_senders_to_the_logits_equal_noising_each_head(tiny):
    model, clean, corrupted, metric = tiny
    last = model.n_layers - 1
    senders = [f"a{last}.h{h}" for h in range(model.info.n_heads)]
    stacked = path_patching(model, clean, corrupted, metric, senders=senders)
    one_by_one = path_patching(model, clean, corrupted, metric, senders=senders, max_rows=len(clean))
    noised = activation_patching(model, clean, corrupted, metric, "heads", noising=True)
    torch.testing.assert_close(stacked.values[0], noised.values[last], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_by_one.values, stacked.values, atol=1e-5, rtol=1e-5)
    assert stacked.clean == pytest.approx(noised.clean) and stacked.effect().abs().max() > 1e-3


def test_direct_path_with_mlps_frozen_is_the_readout_of_the_senders_change():
    model = mechscope.load_model(tiny_hf("gpt2"), device="cpu")
    clean, corrupted = token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2)
    metric = last_token_metric(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))
    result = path_patching(model, clean, corrupted, metric, senders=["a0.h1"], freeze_mlps=True)
    hooks = ["blocks.0.attn.hook_result", f"blocks.{model.n_layers - 1}.hook_resid_post"]
    _, cached = model.run_with_cache(clean, hooks)
    _, source = model.run_with_cache(corrupted, hooks[:1])
    final = cached[hooks[1]] + source[hooks[0]][:, :, 1] - cached[hooks[0]][:, :, 1]
    with torch.no_grad():
        logits = model.hf.lm_head(model.hf.transformer.ln_f(final))
    assert float(result.values[0, 0]) == pytest.approx(float(metric(logits).mean()), abs=1e-4)


@pytest.fixture(scope="module")
def handbuilt():
    return handbuilt_model()


@pytest.fixture(scope="module")
def induction_run(handbuilt):
    model = handbuilt
    batch = make_task("induction").batch(model.tokenizer, 16)
    receivers = [f"a1.h{h}<{p}>" for h in range(4) for p in "qkv"] + ["logits"]
    return path_patching(model, batch.clean, batch.corrupted, task_metric(model, batch), receivers,
                         attention_mask=batch.attention_mask)


def test_only_the_planted_edges_carry_effect_on_the_handbuilt_model(induction_run):
    effect = induction_run.effect()
    assert induction_run.clean > 5 > -5 > induction_run.corrupted
    found, silent = set(), []
    for receiver, row in zip(induction_run.labels["receiver"], effect):
        for sender, value in zip(induction_run.labels["sender"], row.tolist()):
            if receiver == "logits" or sender.startswith("a0."):
                (found.add(f"{sender}->{receiver}") if abs(value) > 5 else silent.append(abs(value)))
    truth = handbuilt_circuit(HandBuiltConfig())
    assert found == {e for e in truth if not e.startswith("input")}  # K-composition and the copy to the logits
    assert max(silent) < 1e-3  # via q or v, from distractors, into distractors: nothing


def test_path_effects_as_edge_scores_rank_the_planted_edges_first(induction_run, handbuilt):
    scores = path_edge_scores(induction_run, handbuilt)
    assert len(scores) == 4 * 12 + 8  # layer-0 heads into layer-1 q/k/v, every head into the logits
    assert edge_roc_auc(scores, handbuilt_circuit(HandBuiltConfig()) & set(scores)) == 1.0


def test_result_names_its_axes_and_saves(induction_run, tmp_path):
    assert induction_run.axes == ("receiver", "sender")
    assert induction_run.label_of(int(induction_run.values.argmin())) == "receiver=logits sender=a1.h2"
    files = induction_run.save(tmp_path / "pp")
    assert (tmp_path / "pp" / "heatmap.html").stat().st_size > 0 and files["json"].endswith("result.json")


def test_bad_names_are_refused(tiny):
    model, clean, corrupted, metric = tiny
    with pytest.raises(MechscopeError, match="not an input"):
        path_patching(model, clean, corrupted, metric, receivers=["a9.h0<q>"])
    with pytest.raises(MechscopeError, match="not a MIB node name"):
        path_patching(model, clean, corrupted, metric, receivers=["head 3"])
    with pytest.raises(MechscopeError, match="senders named"):
        path_patching(model, clean, corrupted, metric, senders=["m0"])


def test_organism_composes_through_keys_not_queries_or_values(small_organism):
    model = small_organism("induction").model
    batch = make_task("induction").batch(model.tokenizer, 32)
    edges = sorted(e for e in induction_circuit(model) if e.endswith("<k>"))
    senders = sorted({e.split("->")[0] for e in edges})
    heads = sorted({e.split("->")[1][:-3] for e in edges})
    result = path_patching(model, batch.clean, batch.corrupted, task_metric(model, batch),
                           [f"{h}<{p}>" for h in heads for p in "qkv"], senders, attention_mask=batch.attention_mask)
    effect = dict(zip(((r, s) for r in result.labels["receiver"] for s in senders), result.effect().flatten().tolist()))
    for edge in edges:
        sender, head = edge.split("->")[0], edge.split("->")[1][:-3]
        via = {p: abs(effect[(f"{head}<{p}>", sender)]) for p in "qkv"}
        assert via["k"] > via["q"] and via["k"] > via["v"], (edge, via)
