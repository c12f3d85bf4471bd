"""Weight orthogonalisation: directional ablation baked into a copy of the model (Arditi et al. 2024, sec. 4).

Every matrix that writes the residual stream — the token (and learned position) embeddings, each
attention output projection and each MLP output projection, with their biases where the family has
them — has `direction` projected out of its output, so the copy computes what the hooked directional
ablation computes, with no hooks. A tied unembedding is untied first (it reads the stream and must keep
its weights). The copy saves as a normal HF directory that plain transformers loads.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from mechscope.errors import SteeringError
from mechscope.manifest import build_manifest, write_manifest
from mechscope.models.loading import wrap


def _writers_are_linear(family) -> bool:
    """Whether attention and MLP outputs are plain projections (no closing norm, no experts, pre-norm blocks)."""
    return (family.topology != "postnorm" and family.ln1_post is None and family.ln2_post is None
            and family.mlp_down is not None)


def _remove_from_rows(weight: Tensor, unit: Tensor) -> None:
    """weight [n, d_model] -= (weight @ u) u^T, in float64, in place."""
    w = weight.data.double()
    weight.data.copy_((w - torch.outer(w @ unit, unit)).to(weight.dtype))


def _remove_from_output(module: nn.Module, unit: Tensor) -> None:
    """Project `unit` out of what a Linear (weight [out, in]) or GPT-2 Conv1D (weight [in, out]) writes."""
    if isinstance(module, nn.Linear):
        w = module.weight.data.double()
        module.weight.data.copy_((w - torch.outer(unit, unit @ w)).to(module.weight.dtype))
    else:  # Conv1D stores [in, out]: its rows are outputs
        _remove_from_rows(module.weight, unit)
    if getattr(module, "bias", None) is not None:
        _remove_from_rows(module.bias[None], unit)


def _untie(hf: nn.Module, embedding: nn.Embedding) -> None:
    head = hf.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == embedding.weight.data_ptr():
        head.weight = nn.Parameter(embedding.weight.detach().clone())
        hf.config.tie_word_embeddings = False
        if hasattr(hf.config, "get_text_config"):
            hf.config.get_text_config().tie_word_embeddings = False


def orthogonalize(model, direction: Tensor):
    """A HookedModel over a copy of `model` whose weights never write along `direction` [d_model]."""
    family = model.family
    if not _writers_are_linear(family):
        raise SteeringError(f"weight orthogonalisation needs attention and MLP outputs that are plain projections; "
                            f"{model.info.name} ({family.name}) closes them with a norm or routes them through "
                            "experts. Use the hooked directional_ablation instead")
    if direction.shape != (model.info.d_model,) or float(direction.norm()) == 0:
        raise SteeringError(f"expected a non-zero direction [d_model={model.info.d_model}], got shape "
                            f"{tuple(direction.shape)}")
    root_name = next(name for name, module in model.hf.named_modules() if module is model.root)
    hf = copy.deepcopy(model.hf)
    root = hf.get_submodule(root_name) if root_name else hf
    unit = (direction.double() / direction.double().norm()).to(model.device)
    embedding = root.get_submodule(family.embed)
    _untie(hf, embedding)
    with torch.no_grad():
        for child in root.children():  # the token embedding and any learned position embedding (GPT-2's wpe)
            if isinstance(child, nn.Embedding) and child.embedding_dim == model.info.d_model:
                _remove_from_rows(child.weight, unit)
        for block in root.get_submodule(family.layers):
            _remove_from_output(block.get_submodule(family.out_proj), unit)
            _remove_from_output(block.get_submodule(family.mlp_down), unit)
    return wrap(hf, model.tokenizer, name=f"{model.info.name} (orthogonalised)", check=False)


def save_orthogonalized(model, direction: Tensor, out: str | Path, source: dict | None = None) -> Path:
    """Write the orthogonalised copy of `model` as an HF directory (weights, config, tokenizer, manifest.json)."""
    out = Path(out)
    edited = orthogonalize(model, direction)
    edited.hf.save_pretrained(out)
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(out)
    write_manifest(out, build_manifest("mechscope.orthogonalized_model", model=model,
                                       direction_norm=float(direction.norm()), source=source or {},
                                       edited=["embeddings", model.family.out_proj, model.family.mlp_down]))
    return out
