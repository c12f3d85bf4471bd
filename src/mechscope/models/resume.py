"""Resuming a recorded forward pass from a block and a position, for many edits that share its prefix.

An edit at block l and position p leaves the output of every block before l, and (in a causal model) every
position before p, exactly as in the unedited run. `record` keeps what that run computed: each block's output
(where blocks return one hidden-state tensor, as every family does in transformers 5) and, where every layer's
KV cache is a plain full-attention one (not sliding windows), the keys and values; without them a run resumes
only from block 0 or position 0, the full forward. `resume` runs the unmodified HF forward on `copies` copies
of the batch, over positions p.. only (the recorded keys and values stand in for the earlier ones), with blocks
before l returning their recorded output instead of computing. None of the model's math is re-done here: the
HF model still embeds, masks, runs blocks l.. and unembeds.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models import positions
from mechscope.models.positions import Positions

if TYPE_CHECKING:
    from mechscope.models.hooked_model import HookedModel


@dataclass(frozen=True)
class RecordedRun:
    """One unedited forward pass: its inputs, output and what each block computed."""

    inputs: dict[str, Tensor]  # model keyword arguments, with an explicit attention_mask [batch, pos]
    output: Tensor  # logits [batch, pos, vocab] (last hidden state for encoders)
    blocks: list[Tensor] | None  # output of each block [batch, pos, d_model]; None: blocks return something else
    kv: list[tuple[Tensor, Tensor]] | None  # keys, values per layer [batch, kv_heads, pos, d_head]; None: not causal,
    #                                         or a cache that is not a plain full-attention one (sliding windows)

    @property
    def resumes_layers(self) -> bool:
        return self.blocks is not None

    @property
    def resumes_positions(self) -> bool:
        return self.blocks is not None and self.kv is not None


def _plain_kv(cache) -> list[tuple[Tensor, Tensor]] | None:
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    return [(layer.keys, layer.values) for layer in layers]


def _output(out) -> Tensor:
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


def record(model: HookedModel, inputs: dict[str, Tensor]) -> RecordedRun:
    """Run `inputs` (with attention_mask) once, keeping each block's output and, for causal models, the KV cache."""
    blocks = model.root.get_submodule(model.family.layers)
    outputs: list[Tensor | None] = [None] * len(blocks)

    def keeper(index: int):
        def keep(_module, _args, output):
            outputs[index] = output
        return keep

    handles = [block.register_forward_hook(keeper(i)) for i, block in enumerate(blocks)]
    causal = model.info.causal
    try:
        with torch.no_grad(), positions.covering(Positions.of_prompt(inputs["attention_mask"]), replace=False):
            out = model.hf(**inputs, use_cache=causal)
    finally:
        for handle in handles:
            handle.remove()
    kv = _plain_kv(getattr(out, "cache", None)) if causal else None
    replayable = all(isinstance(o, Tensor) for o in outputs)  # blocks of older transformers return tuples
    return RecordedRun(inputs, _output(out), outputs if replayable else None, kv)


def _tiled(tensor: Tensor, copies: int) -> Tensor:
    return tensor.repeat(copies, *[1] * (tensor.ndim - 1))


def resume(model: HookedModel, run: RecordedRun, copies: int, layer: int = 0, pos: int = 0,
           outputs_at: list[int] | None = None) -> Tensor:
    """Output [copies * batch, pos, ...] of the HF forward on `copies` copies of the recorded batch, computing
    blocks `layer`.. at positions `pos`.. only; the rest is the recorded run's. Hooks attached to the model see
    positions pos.. of each tensor (pattern queries pos.., keys all). With `outputs_at` (sorted positions) the
    output holds those positions only, and the model unembeds no others where it can (HF's logits_to_keep)."""
    if not 0 <= layer < model.n_layers:
        raise MechscopeError(f"layer must be in 0..{model.n_layers - 1}, got {layer}")
    if layer and not run.resumes_layers:
        raise MechscopeError(f"{model.info.model_type} blocks do not return one hidden-state tensor, so they cannot "
                             "be replayed; resume at layer=0")
    length = run.inputs["input_ids"].shape[1]
    if pos and not run.resumes_positions:
        raise MechscopeError(f"{model.info.model_type} cannot resume at a position (not causal, or its KV cache is "
                             "not a plain full-attention one); resume at pos=0")
    if not 0 <= pos < length:
        raise MechscopeError(f"pos must be in 0..{length - 1}, got {pos}")
    inputs = {k: _tiled(v, copies) for k, v in run.inputs.items()}
    mask = inputs["attention_mask"]
    kwargs = {k: v[:, pos:] for k, v in inputs.items() if k != "attention_mask"}
    if pos:
        # blocks before `layer` never read their cache; they get the untiled prefix, which only gives its length
        kv = [(k[..., :pos, :], v[..., :pos, :]) if i < layer else (_tiled(k[..., :pos, :], copies),
                                                                    _tiled(v[..., :pos, :], copies))
              for i, (k, v) in enumerate(run.kv)]
        from transformers import DynamicCache

        kwargs.update(cache=DynamicCache(kv), use_cache=True)
    else:
        kwargs["use_cache"] = False
    blocks = model.root.get_submodule(model.family.layers)
    skipped = {i: blocks[i].__dict__.get("forward") for i in range(layer)}

    def replay(index: int):
        return lambda *_args, **_kwargs: _tiled(run.blocks[index][:, pos:], copies)

    later = [p - pos for p in outputs_at or () if p >= pos]
    if outputs_at is not None and "logits_to_keep" in inspect.signature(model.hf.forward).parameters:
        kwargs["logits_to_keep"] = torch.tensor(later, dtype=torch.long, device=mask.device)
        later = list(range(len(later)))
    try:
        for i in skipped:
            blocks[i].forward = replay(i)
        covered = Positions.of_prompt(mask)
        with torch.no_grad(), positions.covering(Positions(covered.absolute[:, pos:], covered.is_prompt[:, pos:])):
            out = _output(model.hf(**kwargs, attention_mask=mask))
    finally:
        for i, own in skipped.items():
            if own is None:
                del blocks[i].forward
            else:
                blocks[i].forward = own
    if outputs_at is not None:
        earlier = [p for p in outputs_at if p < pos]
        return torch.cat([_tiled(run.output[:, earlier], copies), out[:, later]], dim=1)
    if not pos:
        return out
    return torch.cat([_tiled(run.output[:, :pos], copies), out], dim=1)
