"""HookedModel: TransformerLens-style hook points over an unmodified Hugging Face model.

The HF forward pass runs as is; hooks are PyTorch forward (pre-)hooks on the family's own modules,
so every cached number is exactly what HF computes.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.errors import HookNameError, MechscopeError
from mechscope.models import attachments, attention, generation, positions
from mechscope.models.attachments import HookFn
from mechscope.models.families import Family
from mechscope.models.generation import Generation, GenerationConfig
from mechscope.models.hook_points import PER_HEAD_COPIES, HookPoint, hook_points
from mechscope.models.positions import Positions
from mechscope.models.resume import RecordedRun, record as record_run, resume as resume_run

Inputs = "str | list[str] | Tensor | Mapping[str, Tensor]"


def _serialised(method):
    """Run a HookedModel method under the model's lock, so other threads' hooks cannot interleave with it."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


class StopForward(Exception):
    """Raised inside a hook to end the forward pass once everything asked for has been seen."""


@dataclass(frozen=True)
class ModelInfo:
    """The numbers a user asks about first (`mechscope models inspect` prints these)."""

    name: str
    family: str
    model_type: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_vocab: int
    causal: bool


class HookedModel:
    """A Hugging Face model with named hook points; see `hook_names()` for what it offers."""

    def __init__(self, hf_model: nn.Module, tokenizer, family: Family, root: str, name: str):
        self.hf = hf_model.eval()
        self.tokenizer = tokenizer
        self.family = family
        self.root = hf_model.get_submodule(root) if root else hf_model
        config = self.root.config
        self.n_layers = len(self.root.get_submodule(family.layers))
        n_heads = config.num_attention_heads
        d_head = getattr(config, "head_dim", None) or config.hidden_size // n_heads
        self.info = ModelInfo(
            name=name, family=family.name, model_type=config.model_type, n_layers=self.n_layers,
            d_model=config.hidden_size, n_heads=n_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads, d_head=d_head,
            d_vocab=config.vocab_size, causal=family.topology != "postnorm",
        )
        self._points = {p.name: p for p in hook_points(family, self.n_layers)}
        self._order = {name: i for i, name in enumerate(self._points)}
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._eager_depth = 0
        self._saved_attn: str | None = None
        self._lock = threading.RLock()  # held by each call and hooks() block: module hooks are global to the model
        attention.register_implementation()
        if tokenizer is not None and tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    # ----- introspection -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def hook_names(self) -> list[str]:
        """Every hook point, in the order they fire."""
        return list(self._points)

    def point(self, name: str) -> HookPoint:
        """The hook point called `name`, or an error listing close valid names."""
        if name not in self._points:
            raise HookNameError(name, self.hook_names())
        return self._points[name]

    def hook_shape(self, name: str) -> tuple[int | str, ...]:
        """Shape of a hook's tensor, with "batch" and "pos" for the dimensions that vary."""
        point = self.point(name)
        if self._shapes is None:
            from mechscope.models.self_test import self_test

            self_test(self)
        trailing = self._shapes[name]
        if point.kind == "pattern":
            return ("batch", trailing[0], "pos", "pos")
        return ("batch", "pos", *trailing)

    def layer_of(self, name: str) -> int | None:
        return self.point(name).layer

    def fingerprint(self) -> str:
        """Short hash of the architecture and a sample of every weight: tells two models apart in manifests."""
        digest = hashlib.sha256()
        for name, param in self.hf.named_parameters():
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes()
            digest.update(f"{name}{tuple(param.shape)}{param.dtype}".encode() + sample)
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        """What manifests record about the model that made an artefact."""
        config = self.hf.config  # GGUF conversions record their file's hash and quantisation in the config
        return {**self.info.__dict__, "fingerprint": self.fingerprint(),
                "revision": getattr(config, "_commit_hash", None) or getattr(config, "mechscope_gguf_sha256", None),
                "quantization": getattr(config, "mechscope_quantization", None)}

    # ----- tokens ----------------------------------------------------------------------------
    def to_tokens(self, texts: str | list[str], prepend_bos: bool | None = None) -> Tensor:
        """Token ids [batch, pos] with the model's own tokenizer (right-padded)."""
        return self.encode(texts, prepend_bos=prepend_bos)["input_ids"]

    def to_string(self, tokens: Tensor | list[int]) -> str | list[str]:
        tokens = torch.as_tensor(tokens)
        if tokens.ndim == 1:
            return self.tokenizer.decode(tokens.tolist())
        return self.tokenizer.batch_decode(tokens.tolist())

    def to_str_tokens(self, tokens: Tensor | list[int]) -> list[str]:
        """One string per token id, for display."""
        return [self.tokenizer.decode([t]) for t in torch.as_tensor(tokens).reshape(-1).tolist()]

    def encode(self, inputs, attention_mask: Tensor | None = None, prepend_bos: bool | None = None) -> dict:
        """Model keyword arguments (input_ids, attention_mask, ...) on the model's device."""
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs):
            if self.tokenizer is None:
                raise MechscopeError("this model has no tokenizer; pass token ids instead of text")
            add_special = True if prepend_bos is None else prepend_bos
            batch = dict(self.tokenizer(list(inputs), return_tensors="pt", padding=True,
                                        add_special_tokens=add_special))
        elif isinstance(inputs, Tensor):
            if inputs.dtype not in (torch.int64, torch.int32) or inputs.ndim not in (1, 2):
                raise MechscopeError(f"token ids must be an integer tensor [batch, pos] or [pos], "
                                     f"got {inputs.dtype} with shape {tuple(inputs.shape)}")
            batch = {"input_ids": inputs if inputs.ndim == 2 else inputs[None]}
        elif isinstance(inputs, Mapping) and "input_ids" in inputs:
            batch = dict(inputs)
        else:
            raise MechscopeError("inputs must be text, a list of texts, token ids [batch, pos] or a dict "
                                 f"with input_ids; got {type(inputs).__name__}")
        if attention_mask is not None:
            batch["attention_mask"] = attention_mask
        return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    # ----- running ---------------------------------------------------------------------------
    @property
    def positions(self) -> Positions:
        """Inside a hook: which positions of each row the running forward call covers (prompt or generated)."""
        return positions.current()

    @_serialised
    def forward(self, inputs, attention_mask: Tensor | None = None) -> Tensor:
        """Logits [batch, pos, vocab] for language models; last hidden state for encoders."""
        batch = self.encode(inputs, attention_mask)
        mask = batch.get("attention_mask")
        with positions.covering(Positions.of_prompt(torch.ones_like(batch["input_ids"]) if mask is None else mask),
                                replace=False):
            output = self.hf(**batch, use_cache=False)
        return output.logits if getattr(output, "logits", None) is not None else output.last_hidden_state

    __call__ = forward

    @contextmanager
    def hooks(self, fns: Mapping[str, HookFn] | Iterable[tuple[str, HookFn]]):
        """Run hook functions `fn(activation, hook_name)` inside the block; a returned tensor replaces the activation."""
        pairs = list(fns.items()) if isinstance(fns, Mapping) else list(fns)
        points = [self.point(name) for name, _ in pairs]
        handles = []
        self._lock.acquire()
        try:
            for point, (_, fn) in zip(points, pairs):
                handles.append(self._attach(point, fn))
            with self._patterns_enabled(any(p.kind == "pattern" for p in points)):
                yield self
        finally:
            for handle in handles:
                handle.remove()
            self._lock.release()

    @_serialised
    def generate(self, inputs, hooks: Mapping[str, HookFn] | Iterable[tuple[str, HookFn]] | None = None,
                 on_token: Callable[[int, int], None] | None = None, on_text: Callable[[int, str], None] | None = None,
                 **settings) -> Generation:
        """New tokens and texts for each prompt with `hooks` active; settings are GenerationConfig fields;
        `on_token(row, token)` sees each new token as it is chosen, `on_text(row, text)` the row's text so far."""
        return generation.generate(self, inputs, hooks, GenerationConfig().updated(**settings), on_token, on_text)

    @_serialised
    def record(self, inputs, attention_mask: Tensor | None = None) -> RecordedRun:
        """One forward pass kept for resuming: its output, each block's output and (causal models) the KV cache."""
        batch = self.encode(inputs, attention_mask)
        batch.setdefault("attention_mask", torch.ones_like(batch["input_ids"]))
        return record_run(self, batch)

    @_serialised
    def resume(self, run: RecordedRun, copies: int = 1, layer: int = 0, pos: int = 0,
               outputs_at: list[int] | None = None) -> Tensor:
        """The recorded run's output on `copies` copies of its batch (at `outputs_at` only, if given), recomputing
        only blocks layer.. at positions pos.. (with the hooks active around the call); see models.resume."""
        return resume_run(self, run, copies, layer, pos, outputs_at)

    @_serialised
    def run_with_cache(self, inputs, names: str | Iterable[str] | None = None, *,
                       stop_at_layer: int | str | None = None, attention_mask: Tensor | None = None,
                       grad: bool = False) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Run the model and return (output, {hook name: activation}).

        names=None caches every point but the per-head copies (attn.hook_{q,k,v}_input, attn.hook_result:
        [batch, pos, head, d_model] each), which are cached when named, as TransformerLens caches them only
        when enabled. stop_at_layer=l runs blocks 0..l-1 only; "auto" stops as soon as every requested hook
        has fired (what harvesting uses). The output is None when the pass was stopped early.
        """
        if names is None:
            names = [n for n in self.hook_names() if self._points[n].kind not in PER_HEAD_COPIES]
        names = [names] if isinstance(names, str) else list(names)
        points = [self.point(n) for n in names]
        cache: dict[str, Tensor] = {}
        auto_stop = stop_at_layer == "auto"

        def save(act: Tensor, name: str) -> None:
            cache[name] = act if grad else act.detach()
            if auto_stop and len(cache) == len(names):
                raise StopForward

        fns: list[tuple[str, HookFn]] = [(n, save) for n in names]
        stop_handle = None
        if isinstance(stop_at_layer, int):
            stop_handle = self._stop_before_layer(stop_at_layer, points)
        elif stop_at_layer not in (None, "auto"):
            raise MechscopeError(f"stop_at_layer must be an int, 'auto' or None, got {stop_at_layer!r}")
        output = None
        try:
            with self.hooks(fns), (nullcontext() if grad else torch.no_grad()):
                output = self.forward(inputs, attention_mask)
        except StopForward:
            pass
        finally:
            if stop_handle is not None:
                stop_handle.remove()
        missing = [n for n in names if n not in cache]
        if missing:
            raise MechscopeError(f"hooks did not fire: {missing}; the model's forward pass skipped them")
        return output, cache

    # ----- internals -------------------------------------------------------------------------
    def _attach(self, point: HookPoint, fn: HookFn):
        return attachments.attach(self, point, fn)

    def _stop_before_layer(self, layer: int, points: list[HookPoint]):
        if not 0 <= layer <= self.n_layers:
            raise MechscopeError(f"stop_at_layer must be in 0..{self.n_layers}, got {layer}")
        late = [p.name for p in points
                if (p.layer is None and p.name != "hook_embed") or (p.layer is not None and p.layer >= layer)]
        if late:
            raise MechscopeError(f"hooks {late} lie at or after stop_at_layer={layer} and would never fire")

        def stop(*_):
            raise StopForward
        blocks = self.root.get_submodule(self.family.layers)
        if layer < self.n_layers:
            return blocks[layer].register_forward_pre_hook(stop)
        return blocks[layer - 1].register_forward_hook(stop)

    @contextmanager
    def _patterns_enabled(self, needed: bool):
        """Switch to the pattern-exposing eager attention only while a pattern hook is attached."""
        if not needed:
            yield
            return
        if self._eager_depth == 0:
            self._saved_attn = self.hf.config._attn_implementation
            self.hf.set_attn_implementation(attention.IMPLEMENTATION)
        self._eager_depth += 1
        try:
            yield
        finally:
            self._eager_depth -= 1
            if self._eager_depth == 0:
                self.hf.set_attn_implementation(self._saved_attn)

    def __repr__(self) -> str:
        i = self.info
        return (f"HookedModel({i.name!r}, family={i.family}, layers={i.n_layers}, d_model={i.d_model}, "
                f"heads={i.n_heads}, d_head={i.d_head})")
