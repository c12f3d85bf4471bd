"""Evaluation: reconstruction and downstream metrics of dictionaries, pooled over every token."""

from mechscope.evaluation.evaluate import EvalResult, evaluate
from mechscope.evaluation.reconstruction import ReconstructionStats, fraction_of_variance_unexplained

__all__ = ["EvalResult", "ReconstructionStats", "evaluate", "fraction_of_variance_unexplained"]
