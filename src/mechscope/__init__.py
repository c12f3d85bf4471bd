"""mechscope: mechanistic-interpretability engineering on Hugging Face transformers."""

from mechscope.data import ActivationCache, harvest, stream_batches, text_source
from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import convert, load_dictionary, save_dictionary
from mechscope.errors import MechscopeError
from mechscope.features import Catalog, mine
from mechscope.models import HookedModel, load_model

__version__ = "0.1.0"

__all__ = ["ActivationCache", "Catalog", "Dictionary", "DictionaryConfig", "HookedModel", "MechscopeError",
           "TrainConfig", "__version__", "convert", "harvest", "load_dictionary", "load_model", "mine",
           "save_dictionary", "stream_batches", "text_source", "train"]
