"""Dictionary file formats: SAELens (native), sparsify, Gemma Scope 1 and 2, Llama Scope, dictionary_learning and
OpenAI.

`load_dictionary` detects the format; `save_dictionary` / `convert` write any of them.
"""

from __future__ import annotations

from pathlib import Path

from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats import (dictionary_learning, gemmascope, gemmascope2, llama_scope, openai, saelens,
                                           sparsify)
from mechscope.errors import MechscopeError

FORMATS = {"saelens": saelens, "sparsify": sparsify, "gemmascope": gemmascope, "gemmascope2": gemmascope2,
           "dictionary_learning": dictionary_learning, "openai": openai, "llama_scope": llama_scope}


def detect_format(path: str | Path) -> str:
    """Which format a file or directory holds, from the files it contains."""
    path = Path(path)
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if {"cfg.json", "sae_weights.safetensors"} <= names:
            return "saelens"
        if {"cfg.json", "sae.safetensors"} <= names:
            return "sparsify"
        if {"config.json", "params.safetensors"} <= names or "params_layer_0.safetensors" in names:
            return "gemmascope2"
        if llama_scope.holds(path):
            return "llama_scope"
        if "params.npz" in names:
            return "gemmascope"
        if "ae.pt" in names:
            return "dictionary_learning"
    elif path.suffix == ".npz":
        return "gemmascope"
    elif path.name == "ae.pt":
        return "dictionary_learning"
    elif path.suffix in (".pt", ".pth"):
        return "openai"
    elif path.suffix == ".safetensors":
        return detect_format(path.parent)
    if not path.exists():
        raise MechscopeError(f"no dictionary at {path}")
    raise MechscopeError(f"{path} holds no known dictionary: expected SAELens (cfg.json + sae_weights.safetensors), "
                         "sparsify (cfg.json + sae.safetensors), Gemma Scope (params.npz), Gemma Scope 2 (config.json "
                         "+ params.safetensors, or params_layer_{i}.safetensors), Llama Scope (hyperparams.json + "
                         "checkpoints/final.safetensors), dictionary_learning "
                         "(ae.pt + config.json) or an OpenAI .pt state dict")


def load_dictionary(path: str | Path, format: str | None = None, device: str = "cpu") -> Dictionary:
    """Load a dictionary written by mechscope, SAELens, sparsify, Gemma Scope (1 and 2), Llama Scope,
    dictionary_learning or OpenAI; or a public release by id (`gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82`, see
    `dictionaries.public`), pulled into the cache on first use."""
    from mechscope.dictionaries.releases import is_release_id

    if format is None and not Path(path).exists() and is_release_id(str(path)):
        from mechscope.dictionaries.public import load_release

        return load_release(str(path), device=device)
    name = format or detect_format(path)
    if name not in FORMATS:
        raise MechscopeError(f"unknown format {name!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[name].load(path).to(device)


def save_dictionary(d: Dictionary, path: str | Path, format: str = "saelens") -> Path:
    if format not in FORMATS:
        raise MechscopeError(f"unknown format {format!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[format].save(d, path)


def convert(source: str | Path, out: str | Path, to: str = "saelens", source_format: str | None = None) -> Path:
    """Read a dictionary in any known format and write it in `to`."""
    return save_dictionary(load_dictionary(source, source_format), out, to)


__all__ = ["FORMATS", "convert", "detect_format", "load_dictionary", "save_dictionary"]
