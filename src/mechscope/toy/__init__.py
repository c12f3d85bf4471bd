"""Toy models of superposition and model organisms; synthetic ground truth (re-exported here) lives in
mechscope.synthetic."""

from mechscope.synthetic import AbsorptionFeatures, SyntheticFeatures, absorption_scores, feature_recovery
from mechscope.toy.chat_tuning import ChatTuneConfig, FineTuneSpec, tune_chat
from mechscope.toy.handbuilt import (HandBuiltConfig, build_handbuilt, handbuilt_circuit, handbuilt_model,
                                     open_handbuilt, repeat_accuracy, save_handbuilt)
from mechscope.toy.induction_circuit import induction_circuit
from mechscope.toy.lm_training import LMConfig, LMTrainConfig, build_lm, train_lm
from mechscope.toy.zoo_transcoders import (OrganismTranscoderConfig, organism_transcoders,
                                               organism_transcoders_path, train_organism_transcoders)
from mechscope.toy.organisms import FINE_TUNED, ORGANISMS, Organism, open_organism, train_organism
from mechscope.toy.refusal_smollm2 import SafetyCheck, SafetyTask
from mechscope.toy.plots import plot_superposition
from mechscope.toy.superposition import (ToyConfig, ToyModel, dimensions_per_feature, feature_dimensionality,
                                         feature_norms, gram, train_toy)
from mechscope.toy.zoo import check_zoo, load_organism, organism_path

__all__ = ["FINE_TUNED", "ORGANISMS", "AbsorptionFeatures", "ChatTuneConfig", "FineTuneSpec", "LMConfig",
           "LMTrainConfig", "Organism", "SafetyCheck", "SafetyTask", "SyntheticFeatures",
           "absorption_scores", "ToyConfig", "ToyModel", "build_lm", "check_zoo", "dimensions_per_feature",
           "feature_dimensionality", "feature_norms", "feature_recovery", "gram", "load_organism", "open_organism",
           "organism_path", "plot_superposition", "train_lm", "train_organism", "train_toy", "tune_chat"]
__all__ += ["OrganismTranscoderConfig", "organism_transcoders", "organism_transcoders_path",
            "train_organism_transcoders"]
__all__ += ["HandBuiltConfig", "build_handbuilt", "handbuilt_circuit", "handbuilt_model", "induction_circuit",
            "open_handbuilt", "repeat_accuracy", "save_handbuilt"]
