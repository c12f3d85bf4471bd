"""Circuit methods on a task's `TaskBatch`: its metric as a per-row function of logits, and one `patch` entry point."""

from __future__ import annotations

from collections import Counter

from mechscope.circuits.attribution import attribution_patching
from mechscope.circuits.components import Component
from mechscope.circuits.config import METHODS
from mechscope.circuits.dla import direct_logit_attribution
from mechscope.circuits.patching import Metric, activation_patching
from mechscope.circuits.results import CircuitResult
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel
from mechscope.tasks import TaskBatch, kl_to_clean, metric as task_metric_fn

PATCH_METRICS = ("logit_diff", "prob_diff", "kl_to_clean")


def task_metric(model: HookedModel, batch: TaskBatch, name: str = "logit_diff") -> Metric:
    """logits [batch, pos, vocab] -> [batch] for `name` ("logit_diff", "prob_diff" or "kl_to_clean")."""
    if name not in PATCH_METRICS:
        raise MechscopeError(f"patching metric must be one of {', '.join(PATCH_METRICS)}, got {name!r} "
                             "(normalised scores come from CircuitResult.normalized())")
    if name == "kl_to_clean":
        clean = batch.logits(model).to(model.device)
        return lambda logits: kl_to_clean(logits, batch, clean)
    fn = task_metric_fn(name)
    return lambda logits: fn(logits, batch)


def same_shape(batch: TaskBatch) -> TaskBatch:
    """The largest group of rows sharing length, answer position and corrupted positions, so that a
    by-position result compares like with like (one IOI template, say)."""
    if len(batch) == 0:
        raise MechscopeError(f"the task batch is empty ({batch.report}); ask for more prompts or another task")
    lengths = batch.attention_mask.sum(1)
    signatures = [(int(n), int(p), tuple((c[:n] != k[:n]).nonzero()[:, 0].tolist()))
                  for n, p, c, k in zip(lengths, batch.positions, batch.clean, batch.corrupted)]
    common = Counter(signatures).most_common(1)[0][0]
    return batch.select([i for i, sig in enumerate(signatures) if sig == common])


def patch(model: HookedModel, batch: TaskBatch, component: str | Component = "resid", *, method: str = "activation",
          metric: str = "logit_diff", noising: bool = False, max_rows: int = 64, progress: bool = False) -> CircuitResult:
    """Activation or attribution patching of `component` over a task batch, scored with the task metric."""
    if method not in METHODS:
        raise MechscopeError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    fn = task_metric(model, batch, metric)
    args = (model, batch.clean, batch.corrupted, fn, component)
    if method == "activation":
        result = activation_patching(*args, noising=noising, attention_mask=batch.attention_mask, max_rows=max_rows,
                                     progress=progress, readout=batch.positions)
    else:
        result = attribution_patching(*args, noising=noising, attention_mask=batch.attention_mask)
    result.info.update(metric=metric, alignment=str(batch.report))
    return result


def task_dla(model: HookedModel, batch: TaskBatch, per_head: bool = True) -> CircuitResult:
    """Direct logit attribution of the first answer minus the first wrong answer at each row's answer position."""
    answer, wrong = batch.answers[:, 0], batch.wrong[:, 0]
    if (answer < 0).any() or (wrong < 0).any():
        raise MechscopeError("direct logit attribution needs an answer and a wrong answer on every row")
    return direct_logit_attribution(model, batch.clean, answer, wrong, attention_mask=batch.attention_mask,
                                    positions=batch.positions, per_head=per_head)

