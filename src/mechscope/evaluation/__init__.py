"""Evaluation: reconstruction and downstream metrics of dictionaries, pooled over every token."""

from mechscope.evaluation.evaluate import EvalConfig, EvalResult, evaluate
from mechscope.evaluation.reconstruction import ReconstructionStats, fraction_of_variance_unexplained

__all__ = ["EvalConfig", "EvalResult", "ReconstructionStats", "evaluate", "fraction_of_variance_unexplained"]
