"""Auto-interpretation: explain and score latents (offline or with an LLM) over a mined feature catalogue."""

from mechscope.autointerp.accounting import PRICES, Price, Usage, UsageLedger, price_for
from mechscope.autointerp.client import Backend, Client, ClientConfig, make_client
from mechscope.autointerp.completion import Completion, LLMClient, LLMError, Message, Request, RetryableError
from mechscope.autointerp.explainers import Explanation, LLMExplainer, OfflineExplainer
from mechscope.autointerp.hf_backend import HFBackend
from mechscope.autointerp.http_backends import AnthropicBackend, OpenAIBackend
from mechscope.autointerp.labelling import LabelConfig, LabelRun, catalog_record, label_features
from mechscope.autointerp.records import Example, ExampleOverlapError, LatentRecord
from mechscope.autointerp.response_cache import ResponseCache, request_key
from mechscope.autointerp.scorers import (DetectionScorer, EmbeddingScorer, FuzzingScorer, Score, SimulationScorer,
                                          make_scorers)
from mechscope.statistics import (ConfidenceInterval, ScoringError, auroc, balanced_accuracy, bootstrap_ci,
                                             pearson)

__all__ = ["PRICES", "AnthropicBackend", "Backend", "Client", "ClientConfig", "Completion", "ConfidenceInterval",
           "DetectionScorer", "EmbeddingScorer", "Example", "ExampleOverlapError", "Explanation", "FuzzingScorer",
           "HFBackend", "LLMClient", "LLMError", "LLMExplainer", "LabelConfig", "LabelRun", "LatentRecord", "Message",
           "OfflineExplainer", "OpenAIBackend", "Price", "Request", "ResponseCache", "RetryableError", "Score",
           "ScoringError", "SimulationScorer", "Usage", "UsageLedger", "auroc", "balanced_accuracy", "bootstrap_ci",
           "catalog_record", "label_features", "make_client", "make_scorers", "pearson", "price_for", "request_key"]
