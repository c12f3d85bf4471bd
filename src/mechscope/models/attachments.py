"""How each kind of hook point (see hook_points.KINDS) attaches a hook function to its module."""

from __future__ import annotations

from typing import Callable
from weakref import WeakKeyDictionary

from torch import Tensor, nn

from mechscope.errors import HookShapeError, ReadOnlyHookError
from mechscope.models import attention
from mechscope.models.hook_points import COMPUTED, HookPoint
from mechscope.models.norms import NormHooks, affine, split
from mechscope.models.ordered_hooks import OrderedHandle
from mechscope.models.projections import QKVSlice, head_results, sum_results

HookFn = Callable[[Tensor, str], "Tensor | None"]
_NORMS: WeakKeyDictionary[nn.Module, tuple[NormHooks, OrderedHandle]] = WeakKeyDictionary()


def call(fn: HookFn, act: Tensor, point: HookPoint) -> Tensor | None:
    """Run `fn`; its replacement (checked for shape) or None when it kept the activation.

    For computed points the activation is a fresh tensor, so returning it (edited in place) counts as a
    replacement; for the others returning the activation itself means "unchanged".
    """
    new = fn(act, point.name)
    if new is None or (new is act and point.kind not in COMPUTED):
        return None
    if not isinstance(new, Tensor) or new.shape != act.shape:
        got = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
        raise HookShapeError(f"hook function for {point.name} returned {got}; expected a tensor of shape "
                             f"{tuple(act.shape)}")
    return new.to(act.dtype)


class _Handles:
    """Several handles removed as one."""

    def __init__(self, *handles):
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _output(point: HookPoint, fn: HookFn):
    def hook(_args, output):
        act = output[0] if isinstance(output, tuple) else output
        new = call(fn, act, point)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new
    return hook


def _input(point: HookPoint, fn: HookFn, n_heads: int):
    def hook(args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        act = x.unflatten(-1, (n_heads, -1)) if point.kind == "heads" else x
        new = call(fn, act, point)
        if new is None:
            return None
        if point.kind == "inplace":  # the residual branch holds the same tensor
            x.copy_(new)
            return None
        if point.kind == "heads":
            new = new.flatten(-2)
        return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})
    return hook


def _qkv(point: HookPoint, fn: HookFn, part: QKVSlice):
    def hook(_args, output):
        new = call(fn, part.read(output), point)
        return None if new is None else part.write(output, new)
    return hook


def _qkv_input(module: nn.Module, point: HookPoint, fn: HookFn, part: QKVSlice, norm: nn.Module | None,
               offset: float):
    """Per-head copies of attention's residual input (before its norm, as in TransformerLens); a replaced copy
    goes through the norm (with its own scale) and the projection for that head alone."""
    seen: list[Tensor] = []

    def remember(args, kwargs):
        seen[:] = [args[0] if args else kwargs["hidden_states"]]

    def hook(_args, output):
        x = seen.pop()
        new = call(fn, x.unsqueeze(-2).expand(*x.shape[:-1], part.n_heads, x.shape[-1]).clone(), point)
        if new is None:
            return None
        if norm is not None:
            centred, scale = split(norm, new)
            new = affine(norm, centred / scale, offset)
        return part.write(output, part.project(module, new))
    return remember, hook


def _result(module: nn.Module, point: HookPoint, fn: HookFn, n_heads: int):
    def hook(args, output):
        new = call(fn, head_results(module, args[0], n_heads), point)
        return None if new is None else sum_results(module, new).to(output.dtype)
    return hook


def _router(point: HookPoint, fn: HookFn):
    shape: list[tuple[int, ...]] = []  # [batch, pos] of the MoE block's input; the router sees tokens flattened

    def remember(args, kwargs):
        shape[:] = [tuple((args[0] if args else kwargs["hidden_states"]).shape[:-1])]

    def hook(_args, output):
        logits = output[0] if isinstance(output, tuple) else output
        if call(fn, logits.reshape(*shape[0], -1), point) is not None:
            raise ReadOnlyHookError(f"{point.name} can be read, not replaced: routing is decided inside the "
                                    "router's forward; patch the MoE input (hook_mlp_in) or its output instead")
    return remember, hook


class _NormHandle:
    """Removes one scale/normalized callback; the norm's shared callback goes with the last one."""

    def __init__(self, module: nn.Module, callbacks: list, callback: Callable):
        self.module, self.callbacks, self.callback = module, callbacks, callback

    def remove(self) -> None:
        if self.callback in self.callbacks:
            self.callbacks.remove(self.callback)
        hooks, handle = _NORMS.get(self.module, (None, None))
        if hooks is not None and not any(hooks.callbacks.values()):
            handle.remove()
            del _NORMS[self.module]


def _norm(model, module: nn.Module, point: HookPoint, fn: HookFn) -> _NormHandle:
    """Scale and normalized share one callback on their norm, registered at the scale's rank."""
    if module not in _NORMS:
        hooks = NormHooks(module, model.family.norm_offset)
        rank = model._order[point.name.rsplit(".", 1)[0] + ".hook_scale"]
        _NORMS[module] = (hooks, OrderedHandle(module, "post", rank, hooks))
    callbacks = _NORMS[module][0].callbacks["scale" if point.kind == "norm_scale" else "normalized"]

    def callback(act: Tensor) -> Tensor | None:
        return call(fn, act, point)
    callbacks.append(callback)
    return _NormHandle(module, callbacks, callback)


def _norm_before_attention(model) -> bool:
    return model.family.ln1 is not None and model.family.topology != "postnorm"


def attach(model, point: HookPoint, fn: HookFn):
    """Register `fn` at `point` of `model`; returns a handle whose remove() detaches it."""
    module = model.root.get_submodule(point.module)
    info, rank = model.info, model._order[point.name]
    if point.kind == "pattern":
        return attention.PatternHandle(module, lambda pattern: call(fn, pattern, point))
    if point.kind in ("norm_scale", "norm_normalized"):
        return _norm(model, module, point, fn)
    if point.kind == "router":
        block = model.root.get_submodule(point.module.rsplit(".", 1)[0])
        remember, hook = _router(point, fn)
        return _Handles(OrderedHandle(block, "pre", rank, remember), OrderedHandle(module, "post", rank, hook))
    if point.kind in ("input", "inplace", "heads"):
        return OrderedHandle(module, "pre", rank, _input(point, fn, info.n_heads))
    if point.kind in ("qkv", "qkv_input"):
        part = QKVSlice(model.family, point.part, info.n_heads, info.n_kv_heads, info.d_head)
        if point.kind == "qkv_input":
            block = f"{model.family.layers}.{point.layer}"
            reads = model.root.get_submodule(f"{block}.{model.family.attn_in}")
            norm = model.root.get_submodule(f"{block}.{model.family.ln1}") if _norm_before_attention(model) else None
            remember, hook = _qkv_input(module, point, fn, part, norm, model.family.norm_offset)
            return _Handles(OrderedHandle(reads, "pre", rank, remember), OrderedHandle(module, "post", rank, hook))
        hook = _qkv(point, fn, part)
    elif point.kind == "result":
        hook = _result(module, point, fn, info.n_heads)
    else:
        hook = _output(point, fn)
    return OrderedHandle(module, "post", rank, hook)
