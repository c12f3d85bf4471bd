"""Settings of the circuit verbs, one dataclass each; the CLI's flags are generated from them."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.circuits.components import COMPONENTS
from mechscope.errors import MechscopeError


@dataclass(frozen=True)
class TaskSelection:
    """Which prompts: a task name ("ioi", "induction", "greater-than", ...) or a .jsonl file of pairs."""

    task: str = "ioi"
    prompts: int = 32
    split: str = "test"
    seed: int = 0
    same_shape: bool = True  # keep the largest group of rows with one length and answer position


@dataclass(frozen=True)
class PatchConfig(TaskSelection):
    component: str = "resid"
    method: str = "activation"  # or "attribution"
    metric: str = "logit_diff"  # or "prob_diff", "kl_to_clean"
    noising: bool = False
    max_rows: int = 64  # rows per forward pass: the memory bound

    def __post_init__(self):
        if self.component not in COMPONENTS:
            raise MechscopeError(f"component must be one of {', '.join(COMPONENTS)}, got {self.component!r}")
        if self.max_rows < 1:
            raise MechscopeError(f"max_rows must be >= 1, got {self.max_rows}")


@dataclass(frozen=True)
class HeadsConfig:
    prompts: int = 8
    length: int = 25  # random tokens per copy; each prompt is BOS + the segment twice
    seed: int = 0
    exclude_bos: bool = False
    exclude_current_token: bool = False
