"""Toy models and synthetic ground truth."""

from mechscope.toy.synthetic import SyntheticFeatures, feature_recovery

__all__ = ["SyntheticFeatures", "feature_recovery"]
