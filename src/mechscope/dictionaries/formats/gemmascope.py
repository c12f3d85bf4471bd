"""Gemma Scope: params.npz with W_enc [d_in, d_sae], W_dec, b_enc, b_dec, threshold (JumpReLU, no b_dec
subtraction before the encoder). Its transcoders (gemma-scope-2b-pt-transcoders) use the same arrays: name
their hooks (MLP input and output) to read one as a transcoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError

NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def _file(path: Path) -> Path:
    """A params.npz path: the file itself, or params.npz inside a directory."""
    return path if path.suffix == ".npz" else path / "params.npz"


def load(path: str | Path, hook_name: str = "", hook_name_out: str = "") -> Dictionary:
    """A Gemma Scope SAE, or with `hook_name_out` a Gemma Scope transcoder reading `hook_name`."""
    file = _file(Path(path))
    try:
        with np.load(file, allow_pickle=False) as params:
            tensors = {name: torch.from_numpy(np.asarray(params[name], dtype=np.float32)) for name in NAMES}
    except KeyError as err:
        raise MechscopeError(f"{file} lacks Gemma Scope array {err}; expected {NAMES}") from err
    d_in, d_sae = tensors["W_enc"].shape
    cfg = DictionaryConfig(d_in=d_in, d_sae=d_sae, architecture="jumprelu", apply_b_dec_to_input=False,
                           d_out=tensors["W_dec"].shape[1] if hook_name_out else None, hook_name=hook_name,
                           hook_name_out=hook_name_out)
    return from_state_dict(cfg, tensors, str(file))


def save(d: Dictionary, path: str | Path) -> Path:
    if d.cfg.architecture not in ("jumprelu", "batchtopk", "matryoshka") or d.cfg.apply_b_dec_to_input:
        raise MechscopeError("Gemma Scope files hold JumpReLU dictionaries that add no b_dec before the encoder; "
                             f"this {d.cfg.architecture} dictionary (apply_b_dec_to_input="
                             f"{d.cfg.apply_b_dec_to_input}) would compute something else there")
    file = _file(Path(path))
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"W_enc": d.W_enc, "W_dec": d.W_dec, "b_enc": d.b_enc, "b_dec": d.b_dec, "threshold": d.threshold}
    np.savez(file, **{k: v.detach().cpu().numpy() for k, v in arrays.items()})
    return file
