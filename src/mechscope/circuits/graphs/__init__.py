"""Attribution graphs (circuit tracing): the local replacement model of one prompt over per-layer transcoders,
direct-effect edges between features, errors, tokens and logits, influence pruning, scores and exports."""

from mechscope.circuits.graphs.attribution import MemoryEstimate, attribute, memory_estimate
from mechscope.circuits.graphs.config import GraphConfig
from mechscope.circuits.graphs.graph import AttributionGraph, Node
from mechscope.circuits.graphs.influence import GraphScores, PrunedGraph, graph_scores, node_influence, prune
from mechscope.circuits.graphs.replacement import GraphError, Transcoders
from mechscope.circuits.graphs.targets import LogitTargets, direction_target, salient_logits

__all__ = ["AttributionGraph", "GraphConfig", "GraphError", "GraphScores", "LogitTargets", "MemoryEstimate", "Node",
           "PrunedGraph", "Transcoders", "attribute", "direction_target", "graph_scores", "memory_estimate",
           "node_influence", "prune", "salient_logits"]
