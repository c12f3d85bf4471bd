"""Sparse dictionaries: one Dictionary class, variants, one trainer, interoperable file formats."""

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.crosscoder import crosscoder_source
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.training import TrainConfig, TrainingError, train

__all__ = ["Dictionary", "DictionaryConfig", "crosscoder_source", "TrainConfig", "TrainingError", "train"]
