"""Prompt tasks with one protocol: clean/corrupted token batches that line up, answers, and metrics; any tokenizer."""

from mechscope.tasks.ab_choice import ABQuestion, refusal_questions
from mechscope.tasks.base import PromptTask, TextTask
from mechscope.tasks.batch import AlignmentReport, PromptPair, TaskBatch, TokenPair, build_batch, collate
from mechscope.tasks.factual import FactualRecall
from mechscope.tasks.greater_than import GreaterThan
from mechscope.tasks.induction import Induction
from mechscope.tasks.ioi import IOI
from mechscope.tasks.jsonl import JsonlPairs, read_pairs
from mechscope.tasks.metrics import (METRICS, accuracy, clean_and_corrupted, kl_to_clean, logit_diff, metric,
                                     normalized_logit_diff, prob_diff)
from mechscope.tasks.refusal import Refusal
from mechscope.tasks.refusal_judge import REFUSAL_PHRASES, JudgedReplies, RefusalJudge, judge_replies
from mechscope.tasks.registry import TASKS, make_task
from mechscope.tasks.safety_requests import Request, SafetyRequests
from mechscope.tasks.splits import held_out

__all__ = ["ABQuestion", "AlignmentReport", "FactualRecall", "GreaterThan", "IOI", "Induction", "JsonlPairs",
           "JudgedReplies", "METRICS", "PromptPair", "PromptTask", "REFUSAL_PHRASES", "Refusal", "RefusalJudge",
           "Request", "SafetyRequests", "TASKS", "TaskBatch", "TextTask", "TokenPair", "accuracy", "build_batch",
           "clean_and_corrupted", "collate", "held_out", "judge_replies", "kl_to_clean", "logit_diff", "make_task",
           "metric", "normalized_logit_diff", "prob_diff", "read_pairs", "refusal_questions"]
