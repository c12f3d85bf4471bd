"""Every prompt task by name: a new task is one new module plus one line here."""

from __future__ import annotations

from dataclasses import fields

from mechscope.errors import TaskError
from mechscope.tasks.base import PromptTask
from mechscope.tasks.factual import FactualRecall
from mechscope.tasks.greater_than import GreaterThan
from mechscope.tasks.induction import Induction
from mechscope.tasks.ioi import IOI
from mechscope.tasks.jsonl import JsonlPairs
from mechscope.tasks.refusal import Refusal

TASKS: dict[str, type[PromptTask]] = {task.name: task for task in (
    IOI, Induction, GreaterThan, Refusal, FactualRecall, JsonlPairs)}


def make_task(name: str, **settings) -> PromptTask:
    """The task called `name` with `settings` (its dataclass fields), e.g. make_task("ioi", corruption="s2_io")."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    task = TASKS[name]
    known = [f.name for f in fields(task)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise TaskError(f"task {name!r} takes settings {known}, got {unknown}")
    try:
        return task(**settings)
    except TypeError as err:  # a required setting (the JSONL path) is missing
        raise TaskError(f"task {name!r} takes settings {known}: {err}") from err
