"""dictionary_learning (Marks et al.): ae.pt + config.json, loaded with weights_only=True.

Each of its dictionary classes maps onto a mechscope variant with the same reconstruction.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.dictionary_learning_crosscoder import is_crosscoder, read_crosscoder
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError


def _read(state: dict, dict_class: str) -> tuple[str, dict, bool]:
    """(architecture, SAELens-named tensors, apply_b_dec_to_input) for one dictionary_learning class."""
    if "W_enc" in state:  # JumpReluAutoEncoder, Matryoshka: SAELens-like names already
        arch = {"JumpReluAutoEncoder": "jumprelu"}.get(dict_class, "batchtopk")
        return arch, dict(state), arch != "jumprelu"
    if "gate_bias" in state:
        return "gated", {"W_enc": state["encoder.weight"].T, "b_gate": state["gate_bias"], "r_mag": state["r_mag"],
                         "b_mag": state["mag_bias"], "W_dec": state["decoder.weight"].T,
                         "b_dec": state["decoder_bias"]}, True
    tensors = {"W_enc": state["encoder.weight"].T, "b_enc": state["encoder.bias"], "W_dec": state["decoder.weight"].T}
    if "decoder.bias" in state:  # AutoEncoderNew (Anthropic April 2024 form)
        return "relu", {**tensors, "b_dec": state["decoder.bias"]}, False
    if "bias" in state:  # AutoEncoder
        return "relu", {**tensors, "b_dec": state["bias"]}, True
    tensors["b_dec"] = state["b_dec"]
    if dict_class == "BatchTopKSAE":
        return "batchtopk", {**tensors, "threshold": state["threshold"]}, True
    return "topk", tensors, True


def load(path: str | Path) -> Dictionary:
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    file = directory / "ae.pt" if path.is_dir() else path
    config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
    trainer = config.get("trainer", {})
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MechscopeError(f"{file} is not a weights-only dictionary_learning checkpoint: {err}") from err
    if is_crosscoder(state):
        return read_crosscoder(state, trainer, str(file))
    arch, tensors, apply_b_dec = _read(state, trainer.get("dict_class", ""))
    d_in, d_sae = tensors["W_enc"].shape
    k = int(state["k"]) if "k" in state else int(trainer.get("k", 32) or 32)
    if "threshold" in tensors and tensors["threshold"].numel() == 1:
        tensors["threshold"] = tensors["threshold"].reshape(1).expand(d_sae).clone()
    cfg = DictionaryConfig(d_in=d_in, d_sae=d_sae, architecture=arch, k=min(k, d_sae), relu_form="classic",
                           apply_b_dec_to_input=apply_b_dec, hook_name=trainer.get("submodule_name", ""),
                           model_name=trainer.get("lm_name", ""))
    return from_state_dict(cfg, tensors, str(file))


def save(d: Dictionary, path: str | Path) -> Path:
    cfg = d.cfg
    W_enc, W_dec, b_enc, b_dec = (t.detach().cpu() for t in (d.W_enc, d.W_dec, d.b_enc, d.b_dec))
    if cfg.architecture == "topk" and cfg.apply_b_dec_to_input:
        dict_class, state = "AutoEncoderTopK", {"encoder.weight": W_enc.T, "encoder.bias": b_enc,
                                                "decoder.weight": W_dec.T, "b_dec": b_dec, "k": torch.tensor(cfg.k),
                                                "threshold": torch.tensor(-1.0)}
    elif cfg.architecture == "relu":
        dict_class = "AutoEncoder" if cfg.apply_b_dec_to_input else "AutoEncoderNew"
        state = {"encoder.weight": W_enc.T, "encoder.bias": b_enc, "decoder.weight": W_dec.T,
                 ("bias" if cfg.apply_b_dec_to_input else "decoder.bias"): b_dec}
    elif cfg.architecture == "jumprelu" and not cfg.apply_b_dec_to_input:
        dict_class, state = "JumpReluAutoEncoder", {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec,
                                                    "threshold": d.threshold.detach().cpu()}
    elif cfg.architecture == "gated":
        dict_class, state = "GatedAutoEncoder", {"encoder.weight": W_enc.T, "gate_bias": b_enc,
                                                 "r_mag": d.r_mag.detach().cpu(), "mag_bias": d.b_mag.detach().cpu(),
                                                 "decoder.weight": W_dec.T, "decoder_bias": b_dec}
    else:
        raise MechscopeError(f"no dictionary_learning class computes a {cfg.architecture} dictionary with "
                             f"apply_b_dec_to_input={cfg.apply_b_dec_to_input}")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in state.items()}, directory / "ae.pt")
    atomic_write_json(directory / "config.json", {"trainer": {
        "dict_class": dict_class, "activation_dim": cfg.d_in, "dict_size": cfg.d_sae, "k": cfg.k,
        "lm_name": cfg.model_name, "submodule_name": cfg.hook_name}})
    return directory
