"""Sparse dictionaries: one Dictionary class, variants, one trainer, interoperable file formats; per-layer
transcoder sets and cross-layer transcoders."""

from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder
from mechscope.dictionaries.clt_training import train_clt
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.crosscoder import crosscoder_source
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.memory import MemoryEstimate, estimate_clt_memory, estimate_memory
from mechscope.dictionaries.kernels import build_kernels, fused_topk, kernel_status
from mechscope.dictionaries.public import load_release, pull_release, resolve_release
from mechscope.dictionaries.releases import RELEASES
from mechscope.dictionaries.training import TrainConfig, TrainingError, train
from mechscope.dictionaries.transcoders import TranscoderSet, load_transcoders

__all__ = ["CLTConfig", "CrossLayerTranscoder", "Dictionary", "DictionaryConfig", "MemoryEstimate", "RELEASES",
           "TrainConfig", "TrainingError", "TranscoderSet", "build_kernels", "crosscoder_source", "estimate_clt_memory",
           "estimate_memory", "fused_topk", "kernel_status", "load_release", "load_transcoders", "pull_release",
           "resolve_release", "train", "train_clt"]
