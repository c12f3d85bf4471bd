"""mechscope: mechanistic-interpretability engineering on Hugging Face transformers."""

from mechscope.autointerp import LabelConfig, label_features
from mechscope.circuits import EdgeCircuit, find_circuit
from mechscope.data import ActivationCache, harvest, stream_batches, text_source
from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import convert, load_dictionary, save_dictionary
from mechscope.errors import MechscopeError
from mechscope.features import Catalog, mine
from mechscope.models import HookedModel, load_model
from mechscope.steering import SteeringVector, caa, fit_iti, select_refusal_direction, steer
from mechscope.toy import Organism, load_organism, open_organism, organism_path, train_organism

from mechscope.version import __version__  # noqa: E402  (re-exported)

__all__ = ["ActivationCache", "Catalog", "Dictionary", "DictionaryConfig", "EdgeCircuit", "HookedModel", "LabelConfig",
           "MechscopeError", "Organism", "SteeringVector", "TrainConfig", "__version__", "caa", "convert",
           "find_circuit", "fit_iti", "harvest", "label_features", "load_dictionary", "load_model", "load_organism",
           "mine", "open_organism", "organism_path", "save_dictionary", "select_refusal_direction", "steer",
           "stream_batches", "text_source", "train", "train_organism"]
