"""dictionary_learning's crosscoders (the science-of-finetuning fork used by Minder et al. 2025).

Its `CrossCoder` / `BatchTopKCrossCoder` state dicts hold encoder.weight [n, d_in, d_sae], encoder.bias
[d_sae], decoder.weight [n, d_sae, d_in], decoder.bias [n, d_in], code_normalization_id, and for BatchTopK
k and a scalar threshold on f * sum of decoder norms; the encoder never subtracts the decoder bias.
"""

from __future__ import annotations

import torch

from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError

CROSSCODER_NORMALIZATION = 1  # CodeNormalization.CROSSCODER: sum over layers of the decoder norms


def is_crosscoder(state: dict) -> bool:
    weight = state.get("encoder.weight")
    return weight is not None and weight.ndim == 3


def read_crosscoder(state: dict, trainer: dict, source: str) -> Dictionary:
    """A mechscope crosscoder computing what the checkpoint's CrossCoder / BatchTopKCrossCoder computes."""
    normalization = int(state.get("code_normalization_id", torch.tensor(CROSSCODER_NORMALIZATION)))
    if normalization != CROSSCODER_NORMALIZATION:
        raise MechscopeError(f"{source}: code_normalization_id {normalization}; mechscope reads crosscoders with "
                             f"CROSSCODER normalisation (id {CROSSCODER_NORMALIZATION}, sum of decoder norms)")
    mean = state.get("activation_mean")
    if mean is not None and not bool(torch.isnan(mean).any()):
        raise MechscopeError(f"{source}: the crosscoder carries an activation normaliser (activation_mean); "
                             "fold it into the activations or save without one")
    n, d_in, d_sae = state["encoder.weight"].shape
    decoder = state["decoder.weight"]
    if tuple(decoder.shape) != (n, d_sae, d_in):
        raise MechscopeError(f"{source}: decoder.weight has shape {tuple(decoder.shape)}, expected {(n, d_sae, d_in)}")
    tensors = {"W_enc": state["encoder.weight"], "b_enc": state["encoder.bias"],
               "W_dec": decoder.permute(1, 0, 2), "b_dec": state["decoder.bias"]}
    batch_topk = "k" in state
    if batch_topk:
        tensors["threshold"] = state["threshold"].reshape(1).expand(d_sae).clone()
    cfg = DictionaryConfig(d_in=n * d_in, d_sae=d_sae, architecture="crosscoder" if batch_topk else "crosscoder-l1",
                           n_sources=n, k=min(int(state.get("k", 32)), d_sae), apply_b_dec_to_input=False,
                           hook_name=trainer.get("submodule_name", ""), model_name=trainer.get("lm_name", ""))
    return from_state_dict(cfg, tensors, source)
