"""Circuits: activation and attribution patching, direct logit attribution, logit lens, head detectors; edge-level
circuits (the patch-mask engine, EAP, EAP-IG, ACDC, path patching, faithfulness, CPR/CMD, ground truth); attribution
graphs over transcoders (circuits.graphs)."""

from mechscope.circuits.acdc import ACDCConfig, ACDCResult, acdc, acdc_sweep
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
from mechscope.circuits.config import EdgeCircuitConfig, HeadsConfig, PatchConfig, TaskSelection
from mechscope.circuits.edge_attribution import EDGE_METHODS, LEVELS, edge_attribution, neuron_groups, unit_names
from mechscope.circuits.edge_differences import SourceDifferences, held_counts
from mechscope.circuits.edge_patching import memory_estimate, run_with_edges, source_chunks, source_values
from mechscope.circuits.edge_results import EdgeCircuit
from mechscope.circuits.edge_runs import (acdc_sweep_edges, attribute_edges, evaluate_circuits, faithfulness_curve,
                                          find_circuit, patched_estimate)
from mechscope.circuits.edge_selection import greedy, prune, select, top_n
from mechscope.circuits.faithfulness import MIB_FRACTIONS, cpr_cmd
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.node_runs import (NEURON_BUDGETS, NODE_BUDGETS, NodeCircuit, find_nodes, neuron_faithfulness,
                                          neuron_metrics, node_circuit, node_faithfulness, top_nodes, unit_curve)
from mechscope.circuits.graphs import AttributionGraph, GraphConfig, Transcoders, attribute, prune as prune_graph, trace

__all__ = ["COMPONENTS", "CircuitResult", "Component", "EDGE_METHODS", "EdgeCircuit", "EdgeCircuitConfig", "EdgeGraph",
           "HEAD_KINDS", "HeadsConfig", "MIB_FRACTIONS", "Patch", "PatchConfig", "TaskSelection", "activation_patching",
           "agreement", "attribute_edges", "attribution_patching", "cpr_cmd", "detection_pattern",
           "direct_logit_attribution", "edge_attribution", "evaluate_circuits", "faithfulness_curve", "find_circuit",
           "greedy", "head_scores", "logit_lens", "memory_estimate", "patch", "prune", "repeated_tokens",
           "run_patches", "run_with_edges", "same_shape", "select", "source_values", "task_dla", "task_metric",
           "top_n", "write_pattern_view"]
__all__ += ["MIBCircuit", "ScoreAgreement", "candidate_edges", "edge_roc_auc", "edge_stability", "graph_config",
            "path_patching", "read_mib_circuit", "score_agreement", "seed_variance", "top_k_overlap", "top_k_recall",
            "write_graph_view", "write_mib_circuit"]
__all__ += ["ACDCConfig", "ACDCResult", "acdc", "acdc_sweep", "acdc_sweep_edges"]
__all__ += ["LEVELS", "NODE_BUDGETS", "NodeCircuit", "find_nodes", "neuron_groups", "node_circuit", "node_faithfulness",
            "source_chunks", "top_nodes", "unit_names"]
__all__ += ["NEURON_BUDGETS", "neuron_faithfulness", "neuron_metrics", "unit_curve"]
__all__ += ["AttributionGraph", "GraphConfig", "Transcoders", "attribute", "prune_graph", "trace"]
__all__ += ["SourceDifferences", "held_counts", "patched_estimate"]
