"""Toy models and synthetic ground truth."""

from mechscope.toy.absorption import AbsorptionFeatures, absorption_scores
from mechscope.toy.plots import plot_superposition
from mechscope.toy.superposition import (ToyConfig, ToyModel, dimensions_per_feature, feature_dimensionality,
                                         feature_norms, gram, train_toy)
from mechscope.toy.synthetic import SyntheticFeatures, feature_recovery

__all__ = ["AbsorptionFeatures", "SyntheticFeatures", "absorption_scores", "ToyConfig", "ToyModel", "dimensions_per_feature", "feature_dimensionality",
           "feature_norms", "feature_recovery", "gram", "plot_superposition", "train_toy"]
