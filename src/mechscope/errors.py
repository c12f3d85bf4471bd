"""Errors mechscope raises at its boundaries: each says what was expected and what was given."""

from __future__ import annotations

import difflib


class MechscopeError(Exception):
    """Base class for every error mechscope raises on bad input."""


class UnsupportedModelError(MechscopeError):
    """The model's architecture has no adapter."""


class ModelNotFoundError(MechscopeError):
    """A model name or path could not be resolved to weights on this machine."""


class HookNameError(MechscopeError, KeyError):
    """A hook name the model does not have."""

    def __init__(self, name: str, valid: list[str]):
        close = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid names look like {valid[:4]}"
        super().__init__(f"unknown hook name {name!r}{hint} (model.hook_names() lists all {len(valid)})")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class HookShapeError(MechscopeError):
    """A hook function returned a replacement of the wrong shape."""


class ReadOnlyHookError(MechscopeError):
    """A hook function tried to replace an activation that can only be read."""


class SelfTestError(MechscopeError):
    """A hooked model broke one of the identities its hook names promise."""


class OrganismError(MechscopeError):
    """An unknown model organism or size, or a directory that holds no organism."""


class TaskError(MechscopeError):
    """A prompt task asked for what it cannot give: unknown task, split or metric, a malformed pair file, or a
    tokenizer on which no clean/corrupted pair lines up."""


class DataError(MechscopeError):
    """A text source, token stream or activation cache that cannot be used as asked."""


class CacheMismatchError(DataError):
    """An activation cache on disk does not match the request (model, hooks, settings)."""


class CorruptShardError(DataError):
    """A cache shard is missing or its checksum does not match the manifest."""


class GenerationError(MechscopeError):
    """Generation asked of a model or with settings that cannot produce it."""


class MissingPackageError(MechscopeError):
    """An optional package a feature needs is not installed; the message gives the pip command."""


class GGUFError(ModelNotFoundError):
    """A GGUF file that cannot be read (corrupt, truncated) or converted (architecture transformers lacks)."""


class SteeringError(MechscopeError):
    """A steering vector, intervention or weight edit that does not fit the model or the request."""


class PipelineError(MechscopeError):
    """A pipeline config that cannot run (unknown key or stage kind, wrong type, missing input stage), or a run
    directory whose state does not fit the request."""
