"""Model diffing: crosscoder latent classes and Latent Scaling, the activation-difference lens, per-token KL,
diff reports and universal-feature matching between dictionaries of two models."""

from mechscope.diffing.latent_classes import (CLASSES, LatentClasses, LatentThresholds, classify_latents,
                                              decoder_cosines, relative_norms)
from mechscope.diffing.latent_scaling import LatentScaling, latent_scaling
from mechscope.diffing.lens import TokenKL, activation_difference, token_kl, vocabulary_projection
from mechscope.diffing.plots import plot_crosscoder_latents
from mechscope.diffing.report import DiffConfig, diff_models
from mechscope.diffing.universal import FeatureMatch, UniversalConfig, match_features

__all__ = ["CLASSES", "DiffConfig", "FeatureMatch", "LatentClasses", "LatentScaling", "LatentThresholds", "TokenKL",
           "UniversalConfig", "activation_difference", "classify_latents", "decoder_cosines", "diff_models",
           "latent_scaling", "match_features", "plot_crosscoder_latents", "relative_norms", "token_kl",
           "vocabulary_projection"]
