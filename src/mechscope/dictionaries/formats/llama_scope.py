"""Llama Scope (OpenMOSS lm_saes; fnlp/Llama3_1-8B-Base-L*): a folder with hyperparams.json and
checkpoints/final.safetensors (encoder.weight [d_sae, d_model], encoder.bias, decoder.weight [d_model, d_sae],
decoder.bias), stored as trained.

lm_saes trains in a normalised space: with norm_activation "dataset-wise" the input is multiplied by
s_in = sqrt(d_model) / dataset_average_activation_norm["in"] and the target by s_out (same with "out"). Loading
does what lm_saes's own `from_pretrained` does before inference, so codes and the scalar jump_relu_threshold
(fitted by lm_saes on those inference pre-activations) mean what they meant there: encoder.bias /= s_in,
decoder.bias /= s_out, decoder.weight *= s_in / s_out; then with sparsity_include_decoder_norm each decoder column
is scaled to unit norm and its encoder row and bias by that norm; with apply_decoder_bias_to_pre_encoder the
(standardised) decoder bias is subtracted from the input, folded here into b_enc. The result is a plain JumpReLU,
TopK or ReLU dictionary on raw activations. (SAELens's loader keeps the stored scale instead, so its codes are
s_in / ||dec|| times these.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError

CONFIG_FILE, WEIGHTS_FILE = "hyperparams.json", "checkpoints/final.safetensors"
_ARCH = {"jumprelu": "jumprelu", "topk": "topk", "relu": "relu"}
_TENSORS = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")


def holds(path: Path) -> bool:
    return (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists()


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        raw = json.loads((path / CONFIG_FILE).read_text())
        tensors = load_file(path / WEIGHTS_FILE)
    except FileNotFoundError as err:
        raise MechscopeError(f"{path} is not a Llama Scope dictionary (needs {CONFIG_FILE} and {WEIGHTS_FILE})") \
            from err
    except Exception as err:
        raise MechscopeError(f"{path}: corrupt Llama Scope files ({err.__class__.__name__}: {err})") from err
    missing = [name for name in _TENSORS if name not in tensors]
    if missing:
        raise MechscopeError(f"{path / WEIGHTS_FILE} lacks {missing} (lm_saes names encoder.weight, encoder.bias, "
                             "decoder.weight, decoder.bias)")
    return raw, {k: v.float() for k, v in tensors.items()}


def _scales(raw: dict, path: Path) -> tuple[float, float]:
    """(s_in, s_out): the factors lm_saes multiplied the input and the target by while training."""
    mode = raw.get("norm_activation", "dataset-wise")
    if mode in ("inference", "none", None):
        return 1.0, 1.0
    norms = raw.get("dataset_average_activation_norm") or {}
    if mode != "dataset-wise" or not {"in", "out"} <= set(norms):
        raise MechscopeError(f"{path / CONFIG_FILE}: norm_activation {mode!r} with dataset_average_activation_norm "
                             f"{norms!r}; a fixed dictionary needs 'dataset-wise' with both 'in' and 'out' norms "
                             "(token- and batch-wise normalisation are not linear)")
    root = math.sqrt(raw["d_model"])
    return root / norms["in"], root / norms["out"]


def load(path: str | Path) -> Dictionary:
    path = Path(path)
    raw, t = _read(path)
    act = str(raw.get("act_fn", "jumprelu")).lower()
    if act not in _ARCH or raw.get("use_glu_encoder"):
        raise MechscopeError(f"{path / CONFIG_FILE}: act_fn {act!r} (use_glu_encoder={raw.get('use_glu_encoder')}); "
                             f"mechscope reads Llama Scope dictionaries with act_fn in {sorted(_ARCH)} and no GLU "
                             "encoder")
    if act == "topk" and float(raw.get("jump_relu_threshold", 0) or 0) > 0:
        act = "jumprelu"  # lm_saes turns a TopK SAE with a fitted threshold into JumpReLU for inference
    d_sae, d_model = t["encoder.weight"].shape
    if t["decoder.weight"].shape != (d_model, d_sae):
        raise MechscopeError(f"{path}: decoder.weight has shape {tuple(t['decoder.weight'].shape)}, expected "
                             f"{(d_model, d_sae)} from encoder.weight")
    s_in, s_out = _scales(raw, path)
    # lm_saes's own inference form: standardise by the dataset norms, then move the decoder norms into the encoder
    enc_w, enc_b = t["encoder.weight"], t["encoder.bias"] / s_in
    dec_w = t["decoder.weight"] * (s_in / s_out)
    dec_b = t["decoder.bias"] / s_out if raw.get("use_decoder_bias", True) else torch.zeros(d_model)
    if raw.get("sparsity_include_decoder_norm"):
        norms = dec_w.norm(dim=0)
        dec_w, enc_w, enc_b = dec_w / norms, enc_w * norms[:, None], enc_b * norms
    if raw.get("use_decoder_bias", True) and raw.get("apply_decoder_bias_to_pre_encoder"):
        enc_b = enc_b - dec_b @ enc_w.T
    hook_in, hook_out = raw.get("hook_point_in", ""), raw.get("hook_point_out", "")
    transcoder = bool(hook_out) and hook_out != hook_in
    cfg = DictionaryConfig(d_in=d_model, d_sae=d_sae, architecture=_ARCH[act], k=int(raw.get("top_k") or 32),
                           apply_b_dec_to_input=False, d_out=d_model if transcoder else None, hook_name=hook_in,
                           hook_name_out=hook_out if transcoder else "", model_name=raw.get("model_name", ""))
    tensors = {"W_enc": enc_w.T, "b_enc": enc_b, "W_dec": dec_w.T, "b_dec": dec_b}
    if act == "jumprelu":
        tensors["threshold"] = torch.full((d_sae,), float(raw.get("jump_relu_threshold", 0.0)))
    return from_state_dict(cfg, tensors, str(path))


def save(d: Dictionary, path: str | Path) -> Path:
    """Write lm_saes's inference form (norm_activation "inference", unit-free decoder, b_dec folded into b_enc)."""
    cfg = d.cfg
    act = {"jumprelu": "jumprelu", "topk": "topk", "relu": "relu"}.get(cfg.architecture)
    threshold = getattr(d, "threshold", None)
    if act is None or cfg.skip_connection or cfg.n_sources > 1 or cfg.normalize_activations != "none" or (
            act == "jumprelu" and not bool((threshold == threshold[0]).all())):
        raise MechscopeError("Llama Scope files hold one JumpReLU (one scalar threshold), TopK or ReLU dictionary "
                             f"without skip connection, sources or input normalisation; got {cfg.architecture} "
                             f"(skip={cfg.skip_connection}, n_sources={cfg.n_sources}, normalize="
                             f"{cfg.normalize_activations})")
    path = Path(path)
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    b_enc = d.b_enc - d.b_dec @ d.W_enc if cfg.apply_b_dec_to_input else d.b_enc
    write_safetensors(path / WEIGHTS_FILE, {k: v.detach().contiguous().cpu().float() for k, v in {
        "encoder.weight": d.W_enc.T, "encoder.bias": b_enc, "decoder.weight": d.W_dec.T,
        "decoder.bias": d.b_dec}.items()})
    atomic_write_json(path / CONFIG_FILE, {
        "d_model": cfg.d_in, "d_sae": cfg.d_sae, "expansion_factor": cfg.d_sae / cfg.d_in, "act_fn": act,
        "jump_relu_threshold": float(threshold[0]) if act == "jumprelu" else 0.0, "top_k": cfg.k,
        "norm_activation": "inference", "dataset_average_activation_norm": None,
        "sparsity_include_decoder_norm": False, "use_decoder_bias": True, "apply_decoder_bias_to_pre_encoder": False,
        "use_glu_encoder": False, "hook_point_in": cfg.hook_name,
        "hook_point_out": cfg.hook_name_out if cfg.is_transcoder else cfg.hook_name, "model_name": cfg.model_name})
    return path
