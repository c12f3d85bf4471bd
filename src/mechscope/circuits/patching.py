"""Activation patching: many independent patches per forward pass, stacked along the batch.

Denoising runs the corrupted prompts with one clean activation patched in (does this component
suffice to restore the behaviour?); noising runs the clean prompts with one corrupted activation
patched in (is it necessary?). Each patch gets its own copy of the batch, so a forward pass of
`max_rows` rows evaluates max_rows // batch patches at once, and each pass resumes the recorded base run
from the first block and position its patches can change (patch_plan); the result is the same as running
them one by one through the full model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from mechscope.circuits.components import Component, Patch, component as resolve_component
from mechscope.circuits.patch_plan import plan, sequence_axis
from mechscope.circuits.results import CircuitResult
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel
from mechscope.models.resume import RecordedRun

Metric = Callable[[Tensor], Tensor]  # logits [batch, pos, vocab] -> one value per row [batch]


def model_inputs(model: HookedModel, tokens, attention_mask: Tensor | None = None) -> dict[str, Tensor]:
    """Encoded inputs with an explicit attention mask (all ones when none is given)."""
    inputs = model.encode(tokens, attention_mask)
    if "attention_mask" not in inputs:
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return inputs


def paired_inputs(model: HookedModel, clean, corrupted, attention_mask: Tensor | None = None):
    """Clean and corrupted inputs of one shape, sharing the clean attention mask (prompts align token for token)."""
    clean_in = model_inputs(model, clean, attention_mask)
    if clean_in["input_ids"].numel() == 0:
        raise MechscopeError("no prompts to patch: the clean batch is empty")
    corrupt_in = model_inputs(model, corrupted, clean_in["attention_mask"])
    if clean_in["input_ids"].shape != corrupt_in["input_ids"].shape:
        raise MechscopeError(f"clean and corrupted prompts must align token for token; got shapes "
                             f"{tuple(clean_in['input_ids'].shape)} and {tuple(corrupt_in['input_ids'].shape)}")
    return clean_in, corrupt_in


def mean_metric(logits: Tensor, metric: Metric) -> float:
    """The metric of a run, averaged over its prompts."""
    return float(checked_metric(metric, logits.detach().float(), len(logits)).mean())


def checked_metric(metric: Metric, logits: Tensor, rows: int) -> Tensor:
    value = metric(logits)
    if not isinstance(value, Tensor) or value.shape != (rows,):
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise MechscopeError(f"a metric must return one value per prompt, shape ({rows},); got {got}")
    return value


def _patcher(source: Tensor, entries: list[tuple[int, Patch]], copies: int, offset: int, axis: int):
    """A hook function that writes each entry's part of `source` into its own copy of the batch; the hook's
    tensor starts at position `offset` along `axis`."""
    source = source.narrow(axis, offset, source.shape[axis] - offset)

    def fn(act: Tensor, _name: str) -> Tensor:
        rows = act.reshape(copies, -1, *act.shape[1:])
        mask = torch.zeros((copies, 1, *act.shape[1:]), dtype=torch.bool, device=act.device)
        for copy, patch in entries:
            mask[(copy, 0) + patch.index(act.ndim, offset)] = True
        return torch.where(mask, source[None].to(act.dtype), rows).reshape(act.shape)
    return fn


def chunk_starts(n_items: int, per_forward: int, progress: bool, desc: str = "patching"):
    """Start of each chunk of `per_forward` items (copies of the batch in one forward pass), with a progress bar."""
    starts = range(0, n_items, per_forward)
    if progress:
        from tqdm.auto import tqdm

        return tqdm(starts, desc=desc, unit="forward")
    return starts


def stacked_inputs(inputs: dict[str, Tensor], copies: int) -> dict[str, Tensor]:
    """The inputs repeated `copies` times along the batch."""
    return {k: v.repeat(copies, *[1] * (v.ndim - 1)) for k, v in inputs.items()}


def metric_per_copy(logits: Tensor, metric: Metric, batch: int) -> Tensor:
    """Mean metric of each copy of a `batch`-row batch stacked in logits [copies * batch, pos, vocab]."""
    per_row = torch.cat([checked_metric(metric, part, batch) for part in logits.float().split(batch)])
    return per_row.view(-1, batch).mean(1).cpu()


class ReadoutLogits:
    """Logits [rows, pos, vocab] that hold numbers only at the readout positions (NaN elsewhere), one buffer reused."""

    def __init__(self, readout: Tensor):
        self.positions = sorted(set(readout.tolist()))
        self.buffer: Tensor | None = None

    def fill(self, kept: Tensor, length: int) -> Tensor:
        shape = (len(kept), length, kept.shape[-1])
        if self.buffer is None or self.buffer.shape != shape:
            self.buffer = torch.full(shape, float("nan"), device=kept.device)
        self.buffer[:, self.positions] = kept.float()
        return self.buffer


def resumed_metric(model: HookedModel, run: RecordedRun, copies: int, metric: Metric, layer: int = 0, pos: int = 0,
                   logits_at: ReadoutLogits | None = None) -> Tensor:
    """Mean metric of each of `copies` copies of the recorded run resumed at (layer, pos) under the active hooks
    [copies]; with `logits_at` only the readout positions are unembedded."""
    batch, length = run.inputs["input_ids"].shape
    with torch.no_grad():
        logits = model.resume(run, copies, layer, pos, logits_at and logits_at.positions).float()
    if logits_at is not None:
        logits = logits_at.fill(logits, length)
    per_copy = metric_per_copy(logits, metric, batch)
    if logits_at is not None and per_copy.isnan().any():
        raise MechscopeError(f"the metric read logits outside the readout positions {logits_at.positions}")
    return per_copy


def no_op_patches(model: HookedModel, run: RecordedRun, source: dict[str, Tensor],
                  patches: Sequence[Patch]) -> list[bool]:
    """Which patches write exactly what the base run holds already (in a causal model, every position before the
    first token where the two prompts differ): their patched run is the base run."""
    _, held = model.run_with_cache(run.inputs, sorted({p.hook for p in patches}))
    return [torch.equal(source[p.hook][(slice(None),) + p.index(source[p.hook].ndim)],
                        held[p.hook][(slice(None),) + p.index(held[p.hook].ndim)]) for p in patches]


def run_patches(model: HookedModel, base: dict | RecordedRun, source: dict[str, Tensor], patches: Sequence[Patch],
                metric: Metric, max_rows: int = 64, progress: bool = False, resume: bool = True,
                readout: Tensor | None = None) -> Tensor:
    """Mean metric [len(patches)] of `base` with each patch's part of the cached `source` activations.

    With `resume` patches that change nothing take the base run's value, and each pass recomputes only the
    blocks and positions its patches can change (patch_plan); without, every patch runs in a full forward.
    `base` may be inputs or their `model.record(...)`. `readout` [batch] names the position whose logits each
    row's metric reads: no others are unembedded.
    """
    run = base if isinstance(base, RecordedRun) else model.record(base)
    batch = len(run.inputs["input_ids"])
    values = torch.empty(len(patches))
    todo = list(range(len(patches)))
    if resume:
        no_op = no_op_patches(model, run, source, patches)
        values[torch.tensor(no_op, dtype=torch.bool)] = mean_metric(run.output, metric)
        todo = [i for i in todo if not no_op[i]]
    passes = plan(model, [patches[i] for i in todo], max(1, max_rows // batch), layers=resume and run.resumes_layers,
                  positions=run.resumes_positions)
    logits_at = None if readout is None else ReadoutLogits(readout)
    if progress:
        from tqdm.auto import tqdm

        passes = tqdm(passes, desc="patching", unit="forward")
    for step in passes:
        indices = [todo[i] for i in step.indices]
        copies = len(indices)
        by_hook: dict[str, list[tuple[int, Patch]]] = defaultdict(list)
        for copy, index in enumerate(indices):
            by_hook[patches[index].hook].append((copy, patches[index]))
        hooks = {hook: _patcher(source[hook], entries, copies, step.pos, sequence_axis(model, hook))
                 for hook, entries in by_hook.items()}
        with model.hooks(hooks):
            values[indices] = resumed_metric(model, run, copies, metric, step.layer, step.pos, logits_at)
    return values


def token_strings(model: HookedModel, ids) -> list[str]:
    """One display string per token id ("#id" for models without a tokenizer)."""
    if model.tokenizer is None:
        return [f"#{i}" for i in torch.as_tensor(ids).reshape(-1).tolist()]
    return model.to_str_tokens(ids)


def position_labels(model: HookedModel, tokens: Tensor) -> list[str]:
    """"index:token" per position."""
    return [f"{i}:{t}" for i, t in enumerate(token_strings(model, tokens))]


def axis_labels(model: HookedModel, sizes: dict[str, int], tokens: Tensor) -> dict[str, list[str]]:
    labels = {axis: [str(i) for i in range(sizes.get(axis, 0))] for axis in ("layer", "head")}
    if "pos" in sizes:
        labels["pos"] = position_labels(model, tokens[0])
    return {axis: labels[axis] for axis in sizes}


def activation_patching(model: HookedModel, clean, corrupted, metric: Metric, component: str | Component = "resid",
                        *, noising: bool = False, attention_mask: Tensor | None = None, max_rows: int = 64,
                        progress: bool = False, resume: bool = True, readout: Tensor | None = None) -> CircuitResult:
    """Exact patching of every site of `component` (e.g. "resid", "heads", "heads-by-pos"); see the module doc.

    `max_rows` bounds the rows of one forward pass (the memory knob): with max_rows equal to the batch and
    resume=False every patch runs alone through the full model, the one-patch-per-forward reference.
    `readout` [batch]: the position whose logits each row's metric reads (None: any), see run_patches.
    """
    comp = resolve_component(component)
    clean_in, corrupt_in = paired_inputs(model, clean, corrupted, attention_mask)
    base, source_in = (clean_in, corrupt_in) if noising else (corrupt_in, clean_in)
    patches, sizes = comp.patches(model, clean_in["input_ids"].shape[1])
    hooks = sorted({p.hook for p in patches})
    with torch.no_grad():
        source_logits, source = model.run_with_cache(source_in, hooks)
    run = model.record(base)
    values = run_patches(model, run, source, patches, metric, max_rows, progress, resume, readout)
    base_value = mean_metric(run.output, metric)
    prompts = len(clean_in["input_ids"])
    info = {"component": comp.name, "noising": noising, "prompts": prompts, "patches": len(patches),
            "forward_passes": -(-len(patches) // max(1, max_rows // prompts)), "resume": resume}
    source_value = mean_metric(source_logits, metric)
    clean, corrupted = (base_value, source_value) if noising else (source_value, base_value)
    return CircuitResult(values.view(*sizes.values()), tuple(sizes), axis_labels(model, sizes, clean_in["input_ids"]),
                         "activation_patching", info, clean=clean, corrupted=corrupted)
