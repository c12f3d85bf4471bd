"""Synthetic ground truth below dictionaries/: activations built from known feature directions, the
absorption toy, and the scores of how well a dictionary recovers them."""

from mechscope.synthetic.absorption import AbsorptionFeatures, absorption_scores
from mechscope.synthetic.features import SyntheticFeatures
from mechscope.synthetic.recovery import feature_recovery

__all__ = ["AbsorptionFeatures", "SyntheticFeatures", "absorption_scores", "feature_recovery"]
