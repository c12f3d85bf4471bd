"""Circuits: activation and attribution patching, direct logit attribution, logit lens, head detectors."""

from mechscope.circuits.attribution import agreement, attribution_patching
from mechscope.circuits.components import COMPONENTS, Component, Patch
from mechscope.circuits.dla import direct_logit_attribution, logit_lens
from mechscope.circuits.edge_truth import (ScoreAgreement, edge_roc_auc, edge_stability, score_agreement, seed_variance,
                                           top_k_overlap, top_k_recall)
from mechscope.circuits.graph_view import write_graph_view
from mechscope.circuits.heads import HEAD_KINDS, detection_pattern, head_scores, repeated_tokens
from mechscope.circuits.mib import MIBCircuit, candidate_edges, graph_config, read_mib_circuit, write_mib_circuit
from mechscope.circuits.path_patching import path_patching
from mechscope.circuits.patching import activation_patching, run_patches
from mechscope.circuits.pattern_view import write_pattern_view
from mechscope.circuits.results import CircuitResult
from mechscope.circuits.task_runs import patch, same_shape, task_dla, task_metric
from mechscope.circuits.config import HeadsConfig, PatchConfig, TaskSelection

__all__ = ["COMPONENTS", "CircuitResult", "Component", "HEAD_KINDS", "HeadsConfig", "Patch", "PatchConfig",
           "TaskSelection", "activation_patching", "agreement", "attribution_patching", "detection_pattern",
           "direct_logit_attribution", "head_scores", "logit_lens", "patch", "repeated_tokens", "run_patches",
           "same_shape", "task_dla", "task_metric", "write_pattern_view"]
__all__ += ["MIBCircuit", "ScoreAgreement", "candidate_edges", "edge_roc_auc", "edge_stability", "graph_config",
            "path_patching", "read_mib_circuit", "score_agreement", "seed_variance", "top_k_overlap", "top_k_recall",
            "write_graph_view", "write_mib_circuit"]
