"""Auto-interpretation: LLM clients (OpenAI-compatible, Anthropic, local HF) and scorer statistics."""

from mechscope.autointerp.accounting import PRICES, Price, Usage, UsageLedger, price_for
from mechscope.autointerp.client import Backend, Client, ClientConfig, make_client
from mechscope.autointerp.completion import Completion, LLMClient, LLMError, Message, Request, RetryableError
from mechscope.autointerp.hf_backend import HFBackend
from mechscope.autointerp.http_backends import AnthropicBackend, OpenAIBackend
from mechscope.autointerp.response_cache import ResponseCache, request_key
from mechscope.autointerp.statistics import (ConfidenceInterval, ScoringError, auroc, balanced_accuracy, bootstrap_ci,
                                             pearson)

__all__ = ["PRICES", "AnthropicBackend", "Backend", "Client", "ClientConfig", "Completion", "ConfidenceInterval",
           "HFBackend", "LLMClient", "LLMError", "Message", "OpenAIBackend", "Price", "Request", "ResponseCache",
           "RetryableError", "ScoringError", "Usage", "UsageLedger", "auroc", "balanced_accuracy", "bootstrap_ci",
           "make_client", "pearson", "price_for", "request_key"]
