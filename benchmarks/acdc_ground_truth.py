"""ACDC, EAP and EAP-IG against known circuits: the hand-built induction transformer and the small induction
organism (truth from its head detectors). Prints ROC AUC, kept edges, passes and candidate circuits per tau.

    python benchmarks/acdc_ground_truth.py [--gradients-only]
"""

from __future__ import annotations

import sys

from mechscope.circuits.config import EdgeCircuitConfig
from mechscope.circuits.edge_runs import acdc_edges, attribute_edges
from mechscope.circuits.edge_truth import edge_roc_auc
from mechscope.tasks import make_task
from mechscope.toy import load_organism
from mechscope.toy.handbuilt import handbuilt_circuit, handbuilt_model
from mechscope.toy.induction_circuit import induction_circuit

KEYS = ("forward_passes", "candidate_circuits", "naive_forward_passes", "skipped_edges", "seconds")


def report(name: str, model, truth, prompts: int, taus: tuple[float, ...], skip_acdc: bool = False) -> None:
    batch = make_task("induction").batch(model.tokenizer, n=prompts)
    for metric in ("logit_diff", "kl_to_clean"):
        for method in ("eap", "eap-ig", "eap-ig-activations"):
            graph, scores, info = attribute_edges(model, batch, method, metric=metric)
            print(f"{name} {method} ({metric}): ROC AUC {edge_roc_auc(graph.scores_dict(scores), truth):.3f} "
                  f"({info['seconds']} s)")
    if skip_acdc:
        return
    for tau in taus:
        config = EdgeCircuitConfig(method="acdc", tau=tau, metric="kl_to_clean")
        graph, scores, kept, info = acdc_edges(model, batch, config)
        print(f"{name} acdc tau={tau}: {graph.n_edges} edges, kept {int(kept.sum())}, ROC AUC "
              f"{edge_roc_auc(graph.scores_dict(scores), truth):.3f}", {k: info[k] for k in KEYS})


if __name__ == "__main__":
    gradients_only = "--gradients-only" in sys.argv
    report("hand-built", handbuilt_model(), handbuilt_circuit(), 16, (0.001, 0.01, 0.1), gradients_only)
    organism = load_organism("induction", "small", device="cpu").model
    report("induction organism", organism, induction_circuit(organism, with_inputs=True), 32, (0.001, 0.01, 0.03, 0.1),
           gradients_only)
