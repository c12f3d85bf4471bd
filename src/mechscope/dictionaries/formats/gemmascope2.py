"""Gemma Scope 2 (google/gemma-scope-2-*): one folder per dictionary with config.json (hf_hook_point_in/out, width,
l0, architecture "jump_relu", affine_connection, type, model_name) and params.safetensors (w_enc [d_in, width],
w_dec [width, d_out], b_enc, b_dec, threshold). HF module names map to mechscope hooks; a transcoder reads one
and writes the other."""

from __future__ import annotations

import re
from pathlib import Path

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict, read_folder
from mechscope.errors import MechscopeError

CONFIG_FILE, WEIGHTS_FILE = "config.json", "params.safetensors"
HOOKS = {  # HF module output (Gemma 3) -> mechscope hook, both with the layer as {layer}
    "model.layers.{layer}.output": "blocks.{layer}.hook_resid_post",
    "model.layers.{layer}.post_feedforward_layernorm.output": "blocks.{layer}.hook_mlp_out",
    "model.layers.{layer}.post_attention_layernorm.output": "blocks.{layer}.hook_attn_out",
    "model.layers.{layer}.self_attn.o_proj.input": "blocks.{layer}.attn.hook_z",
}


def mechscope_hook(hf_name: str) -> str:
    """The mechscope hook for a Gemma Scope 2 hook point; "" where none holds the same tensor (e.g. the MLP input
    after pre_feedforward_layernorm's weight: bind such a dictionary with an explicit hook)."""
    return _translate(hf_name, HOOKS)


def hf_hook(hook: str) -> str:
    """The Gemma Scope 2 hook point for a mechscope hook ("" where none maps)."""
    return _translate(hook, {mine: theirs for theirs, mine in HOOKS.items()})


def _translate(name: str, table: dict[str, str]) -> str:
    for pattern, target in table.items():
        found = re.fullmatch(re.escape(pattern).replace(r"\{layer\}", r"(\d+)"), name or "")
        if found:
            return target.format(layer=found.group(1))
    return ""


def load(path: str | Path) -> Dictionary:
    path = Path(path)
    raw, tensors = read_folder(path, CONFIG_FILE, WEIGHTS_FILE, "Gemma Scope 2")
    kind = raw.get("type", "sae")
    if kind not in ("sae", "transcoder") or raw.get("affine_connection"):
        raise MechscopeError(f"{path}: mechscope reads Gemma Scope 2 SAEs and transcoders without an affine skip "
                             f"connection; this one has type={kind!r}, "
                             f"affine_connection={raw.get('affine_connection')}")
    if raw.get("architecture", "jump_relu") != "jump_relu":
        raise MechscopeError(f"{path}: architecture {raw['architecture']!r}; Gemma Scope 2 folders hold jump_relu")
    d_in, width = tensors["w_enc"].shape
    transcoder = kind == "transcoder"
    cfg = DictionaryConfig(d_in=d_in, d_sae=width, architecture="jumprelu", apply_b_dec_to_input=False,
                           d_out=tensors["w_dec"].shape[1] if transcoder else None,
                           hook_name=mechscope_hook(raw.get("hf_hook_point_in", "")),
                           hook_name_out=mechscope_hook(raw.get("hf_hook_point_out", "")) if transcoder else "",
                           model_name=raw.get("model_name", ""))
    if raw.get("width") not in (None, width):
        raise MechscopeError(f"{path}: config.json says width {raw['width']}, w_enc has {width} columns")
    return from_state_dict(cfg, {"W_enc": tensors["w_enc"], "W_dec": tensors["w_dec"], "b_enc": tensors["b_enc"],
                                 "b_dec": tensors["b_dec"], "threshold": tensors["threshold"]}, str(path))


def save(d: Dictionary, path: str | Path) -> Path:
    cfg = d.cfg
    if cfg.architecture != "jumprelu" or cfg.apply_b_dec_to_input or cfg.skip_connection:
        raise MechscopeError("Gemma Scope 2 folders hold JumpReLU dictionaries that add no b_dec before the encoder "
                             f"and have no skip connection; got {cfg.architecture} (apply_b_dec_to_input="
                             f"{cfg.apply_b_dec_to_input}, skip_connection={cfg.skip_connection})")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {"w_enc": d.W_enc, "w_dec": d.W_dec, "b_enc": d.b_enc, "b_dec": d.b_dec, "threshold": d.threshold}
    write_safetensors(path / WEIGHTS_FILE, {k: v.detach().cpu().float().contiguous() for k, v in tensors.items()})
    hook_in = hf_hook(cfg.hook_name)
    atomic_write_json(path / CONFIG_FILE, {
        "hf_hook_point_in": hook_in, "hf_hook_point_out": hf_hook(cfg.hook_name_out) if cfg.is_transcoder else hook_in,
        "width": cfg.d_sae, "l0": None, "architecture": "jump_relu", "affine_connection": False,
        "type": "transcoder" if cfg.is_transcoder else "sae", "model_name": cfg.model_name})
    return path
