"""Evaluation: reconstruction and downstream metrics of dictionaries, pooled over every token."""

from mechscope.evaluation.evaluate import EvalConfig, EvalResult, evaluate
from mechscope.evaluation.reconstruction import ReconstructionStats, fraction_of_variance_unexplained
from mechscope.evaluation.transcoders import TranscoderEvalResult, evaluate_transcoders

__all__ = ["EvalConfig", "EvalResult", "ReconstructionStats", "TranscoderEvalResult", "evaluate",
           "evaluate_transcoders", "fraction_of_variance_unexplained"]
