"""EleutherAI sparsify: cfg.json + sae.safetensors, encoder.weight [d_sae, d_in], W_dec [d_sae, d_in]."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError

WEIGHTS_FILE = "sae.safetensors"


def load(path: str | Path) -> Dictionary:
    path = Path(path)
    raw = json.loads((path / "cfg.json").read_text())
    if raw.get("activation", "topk") != "topk" or raw.get("transcode") or raw.get("skip_connection"):
        raise MechscopeError(f"{path}: only sparsify TopK autoencoders are read (got activation="
                             f"{raw.get('activation')!r}, transcode={raw.get('transcode')}, "
                             f"skip_connection={raw.get('skip_connection')})")
    tensors = load_file(path / WEIGHTS_FILE)
    d_in = raw["d_in"]
    d_sae = raw.get("num_latents") or d_in * raw["expansion_factor"]
    cfg = DictionaryConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=raw["k"])
    return from_state_dict(cfg, {"W_enc": tensors["encoder.weight"].T, "b_enc": tensors["encoder.bias"],
                                 "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]}, str(path))


def save(d: Dictionary, path: str | Path) -> Path:
    cfg = d.cfg
    if cfg.architecture != "topk" or not cfg.apply_b_dec_to_input or cfg.normalize_activations != "none":
        raise MechscopeError(f"sparsify stores plain TopK autoencoders; a {cfg.architecture} dictionary "
                             "cannot be written there without changing what it computes")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_safetensors(path / WEIGHTS_FILE, {
        "encoder.weight": d.W_enc.detach().T.contiguous(), "encoder.bias": d.b_enc.detach(),
        "W_dec": d.W_dec.detach(), "b_dec": d.b_dec.detach()})
    atomic_write_json(path / "cfg.json", {
        "activation": "topk", "expansion_factor": max(1, cfg.d_sae // cfg.d_in), "normalize_decoder": True,
        "num_latents": cfg.d_sae, "k": cfg.k, "multi_topk": False, "skip_connection": False, "transcode": False,
        "d_in": cfg.d_in})
    return path
