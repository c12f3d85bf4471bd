"""Attribution graphs (circuit tracing): the local replacement model of one prompt over per-layer or cross-layer
transcoders, direct-effect edges between features, errors, tokens and logits, influence pruning, scores, QK
attribution and exports (Neuronpedia JSON, an offline HTML viewer)."""

from mechscope.circuits.graphs.attribution import MemoryEstimate, attribute, memory_estimate
from mechscope.circuits.graphs.config import GraphConfig
from mechscope.circuits.graphs.files import from_transcoder_set, load_transcoder_directory, trace
from mechscope.circuits.graphs.graph import AttributionGraph, Node
from mechscope.circuits.graphs.grouping import auto_supernodes
from mechscope.circuits.graphs.influence import GraphScores, PrunedGraph, graph_scores, node_influence, prune
from mechscope.circuits.graphs.neuronpedia import neuronpedia_graph, node_id, write_neuronpedia_graph
from mechscope.circuits.graphs.qk import QKAttribution, main_path_heads, qk_attribution
from mechscope.circuits.graphs.transcoders import CrossLayerTranscoders, GraphError, MLPTranscoders, Transcoders
from mechscope.circuits.graphs.targets import LogitTargets, direction_target, salient_logits
from mechscope.circuits.graphs.viewer import write_graph_viewer

__all__ = ["AttributionGraph", "CrossLayerTranscoders", "GraphConfig", "GraphError", "GraphScores", "LogitTargets",
           "MLPTranscoders", "MemoryEstimate", "Node", "PrunedGraph", "QKAttribution", "Transcoders", "attribute", "auto_supernodes",
           "direction_target", "from_transcoder_set", "graph_scores", "load_transcoder_directory",
           "main_path_heads", "memory_estimate", "neuronpedia_graph", "node_id", "node_influence", "prune",
           "qk_attribution", "salient_logits", "trace", "write_graph_viewer", "write_neuronpedia_graph"]
