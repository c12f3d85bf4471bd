"""mechscope: mechanistic-interpretability engineering on Hugging Face transformers."""

from mechscope.autointerp import LabelConfig, label_features
from mechscope.circuits import EdgeCircuit, NodeCircuit, find_circuit, find_nodes
from mechscope.circuits.graphs import AttributionGraph, CrossLayerTranscoders, GraphConfig, Transcoders, attribute
from mechscope.data import ActivationCache, harvest, harvest_pair, stream_batches, text_source
from mechscope.dictionaries import (CLTConfig, CrossLayerTranscoder, Dictionary, DictionaryConfig, MemoryEstimate,
                                    TrainConfig, TranscoderSet, estimate_clt_memory, estimate_memory, fused_topk,
                                    kernel_status, load_transcoders, train, train_clt)
from mechscope.dictionaries.formats import convert, load_dictionary, save_dictionary
from mechscope.dictionaries.public import load_release
from mechscope.diffing import classify_latents, diff_models, latent_scaling, match_features
from mechscope.errors import MechscopeError
from mechscope.evaluation import evaluate_transcoders
from mechscope.features import Catalog, mine
from mechscope.models import HookedModel, load_model
from mechscope.pipeline import PipelineConfig, run_pipeline
from mechscope.report import ReportFiles, redact_personal_data, scan_personal_data, write_report
from mechscope.scans import FamilyScanConfig, scan_families
from mechscope.server import ServerConfig, make_server
from mechscope.steering import SteeringVector, caa, fit_iti, persona_vector, select_refusal_direction, steer
from mechscope.toy import (Organism, load_organism, open_organism, organism_path, organism_transcoders,
                           train_organism)

from mechscope.version import __version__  # noqa: E402  (re-exported)

__all__ = ["ActivationCache", "AttributionGraph", "CLTConfig", "Catalog", "CrossLayerTranscoder",
           "CrossLayerTranscoders", "Dictionary", "DictionaryConfig", "EdgeCircuit", "FamilyScanConfig", "GraphConfig",
           "HookedModel", "LabelConfig", "MechscopeError", "MemoryEstimate", "NodeCircuit", "Organism",
           "PipelineConfig", "ReportFiles", "ServerConfig", "SteeringVector", "TrainConfig", "TranscoderSet",
           "Transcoders", "__version__", "attribute", "caa", "classify_latents", "convert", "diff_models",
           "estimate_clt_memory", "estimate_memory", "evaluate_transcoders", "find_circuit", "find_nodes", "fit_iti",
           "fused_topk", "harvest", "harvest_pair", "kernel_status", "label_features", "latent_scaling",
           "load_dictionary", "load_model", "load_organism", "load_release", "load_transcoders", "make_server",
           "match_features", "mine", "open_organism", "organism_path", "organism_transcoders", "persona_vector",
           "redact_personal_data", "run_pipeline", "save_dictionary", "scan_families", "scan_personal_data",
           "select_refusal_direction", "steer", "stream_batches", "text_source", "train", "train_clt", "train_organism",
           "write_report"]
