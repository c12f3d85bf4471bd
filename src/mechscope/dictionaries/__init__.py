"""Sparse dictionaries: one Dictionary class, variants, one trainer, interoperable file formats."""

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.training import TrainConfig, TrainingError, train
from mechscope.dictionaries.transcoders import TranscoderSet, load_transcoders

__all__ = ["Dictionary", "DictionaryConfig", "TrainConfig", "TrainingError", "TranscoderSet", "load_transcoders",
           "train"]
