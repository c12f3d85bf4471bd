"""Model diffing: crosscoder latent classes and Latent Scaling, the activation-difference lens, per-token KL,
diff reports and universal-feature matching between dictionaries of two models."""

from mechscope.diffing.latent_classes import (CLASSES, LatentClasses, LatentThresholds, classify_latents,
                                              decoder_cosines, relative_norms)
from mechscope.diffing.latent_scaling import LatentScaling, latent_scaling
from mechscope.diffing.plots import plot_crosscoder_latents

__all__ = ["CLASSES", "LatentClasses", "LatentScaling", "LatentThresholds", "classify_latents", "decoder_cosines",
           "latent_scaling", "plot_crosscoder_latents", "relative_norms"]
