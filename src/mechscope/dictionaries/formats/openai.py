"""OpenAI sparse_autoencoder state dicts (.pt): pre_bias, encoder.weight [d_sae, d_in], latent_bias,
decoder.weight [d_in, d_sae], activation "TopK" (with per-token input normalisation) or "ReLU"."""

from __future__ import annotations

from pathlib import Path

import torch

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError


def load(path: str | Path) -> Dictionary:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MechscopeError(f"{path} is not a weights-only OpenAI autoencoder state dict: {err}") from err
    if "pre_bias" not in state or "encoder.weight" not in state:
        raise MechscopeError(f"{path} lacks pre_bias / encoder.weight: not an OpenAI sparse_autoencoder file")
    topk = state.get("activation", "ReLU") == "TopK"
    d_sae, d_in = state["encoder.weight"].shape
    cfg = DictionaryConfig(d_in=d_in, d_sae=d_sae, architecture="topk" if topk else "relu", relu_form="classic",
                           k=int(state.get("activation_state_dict", {}).get("k", 32)),
                           normalize_activations="layer_norm" if topk else "none")
    return from_state_dict(cfg, {"W_enc": state["encoder.weight"].T, "b_enc": state["latent_bias"],
                                 "W_dec": state["decoder.weight"].T, "b_dec": state["pre_bias"]}, str(path))


def save(d: Dictionary, path: str | Path) -> Path:
    cfg = d.cfg
    topk = cfg.architecture == "topk"
    if not (topk and cfg.normalize_activations == "layer_norm") and not (
            cfg.architecture == "relu" and cfg.normalize_activations == "none" and cfg.apply_b_dec_to_input):
        raise MechscopeError("OpenAI files hold TopK autoencoders with per-token input normalisation or plain "
                             f"ReLU ones; this {cfg.architecture} dictionary "
                             f"(normalize_activations={cfg.normalize_activations!r}) is neither")
    state = {"pre_bias": d.b_dec.detach().cpu(), "encoder.weight": d.W_enc.detach().cpu().T.contiguous(),
             "latent_bias": d.b_enc.detach().cpu(), "decoder.weight": d.W_dec.detach().cpu().T.contiguous(),
             "stats_last_nonzero": torch.zeros(cfg.d_sae, dtype=torch.long),
             "activation": "TopK" if topk else "ReLU"}
    if topk:
        state["activation_state_dict"] = {"k": cfg.k, "postact_fn": "ReLU"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
