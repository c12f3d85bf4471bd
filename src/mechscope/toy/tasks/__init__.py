"""Synthetic tasks with known mechanisms: seeded generators, held-out splits and behavioural checks."""

from mechscope.tasks.splits import held_out
from mechscope.toy.tasks.base import CheckResult, Task, final_logits
from mechscope.toy.tasks.greater_than import GreaterThanCheck, GreaterThanPrompt, GreaterThanTask
from mechscope.toy.tasks.induction import InductionCheck, InductionTask
from mechscope.toy.tasks.ioi import IOICheck, IOIExample, IOITask
from mechscope.toy.tasks.refusal import RefusalCheck, RefusalTask, format_prompt

__all__ = ["CheckResult", "GreaterThanCheck", "GreaterThanPrompt", "GreaterThanTask", "IOICheck",
           "IOIExample", "IOITask", "InductionCheck", "InductionTask", "RefusalCheck", "RefusalTask", "Task",
           "final_logits", "format_prompt", "held_out"]
