"""The native format: SAELens's layout (cfg.json + sae_weights.safetensors), readable by SAELens itself.

BatchTopK and Matryoshka dictionaries are written as SAELens "jumprelu" with their learned threshold
(what SAELens does for its own BatchTopK SAEs); mechscope's full config rides along under "mechscope".
Transcoders use SAELens's transcoder classes ("transcoder", "skip_transcoder", "jumprelu_transcoder",
"jumprelu_skip_transcoder": d_out, hook_name_out, W_skip [d_out, d_in]); a TopK transcoder, which SAELens
has no class for, is written as "topk_transcoder".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.errors import MechscopeError

CFG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"
_SAELENS_ARCH = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "matryoshka": "jumprelu",
                 "jumprelu": "jumprelu", "gated": "gated"}
_FROM_SAELENS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated",
                 "batchtopk": "batchtopk", "matryoshka_batchtopk": "matryoshka", "transcoder": "relu",
                 "skip_transcoder": "relu", "jumprelu_transcoder": "jumprelu", "jumprelu_skip_transcoder": "jumprelu",
                 "topk_transcoder": "topk", "topk_skip_transcoder": "topk"}


def _saelens_architecture(cfg: DictionaryConfig) -> str:
    """SAELens's class name for this dictionary (its transcoder classes: ReLU and JumpReLU, with or without skip)."""
    arch = _SAELENS_ARCH.get(cfg.architecture, cfg.architecture)
    if not cfg.is_transcoder:
        return arch
    base = {"standard": "", "jumprelu": "jumprelu_"}.get(arch, f"{arch}_")
    return f"{base}{'skip_' if cfg.skip_connection else ''}transcoder"


def state_dict(d: Dictionary) -> dict[str, torch.Tensor]:
    """SAELens tensor names for a dictionary: the shared four, then the variant's own (Gated's b_enc is b_gate);
    contiguous float32 copies on the CPU where the parameters are not already that."""
    return {k: v.detach().contiguous().cpu().float() for k, v in file_views(d).items()}


def file_views(d: Dictionary) -> dict[str, torch.Tensor]:
    """The tensors of `state_dict` in the file's shapes, as views of the parameters (no copies)."""
    tensors = {"W_enc": d.W_enc, "W_dec": d.W_dec, "b_dec": d.b_dec,
               "b_gate" if d.cfg.architecture == "gated" else "b_enc": d.b_enc}
    tensors.update({name: getattr(d, name) for name in d.variant.saved_tensors})
    if d.W_skip is not None:
        tensors["W_skip"] = d.W_skip.T  # SAELens and circuit-tracer store it [d_out, d_in]
    if d.cfg.n_sources > 1:  # crosscoders: files carry the source axis (W_enc[n, d_in, d_sae], W_dec[d_sae, n, d_in])
        n = d.cfg.n_sources
        tensors.update(W_enc=d.W_enc.unflatten(0, (n, -1)), W_dec=d.W_dec.unflatten(1, (n, -1)),
                       b_dec=d.b_dec.unflatten(0, (n, -1)))
    return tensors


def save(d: Dictionary, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = d.cfg
    config = {"architecture": _saelens_architecture(cfg), "d_in": cfg.d_in // cfg.n_sources, "d_sae": cfg.d_sae,
              "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
              "normalize_activations": cfg.normalize_activations, "reshape_activations": "none",
              "metadata": {"model_name": cfg.model_name, "hook_name": cfg.hook_name, **cfg.metadata},
              "mechscope": cfg.to_dict()}
    if cfg.architecture == "topk":
        config["k"] = cfg.k
    if cfg.is_transcoder:
        config.update(d_out=cfg.d_output, hook_name_out=cfg.hook_name_out)
        config["metadata"]["hook_name_out"] = cfg.hook_name_out
    if cfg.n_sources > 1:
        config["n_sources"] = cfg.n_sources
    write_safetensors(path / WEIGHTS_FILE, state_dict(d))
    atomic_write_json(path / CFG_FILE, config)
    return path


def config_from(raw: dict) -> DictionaryConfig:
    """A DictionaryConfig from a cfg.json written by mechscope or by SAELens (v5 or v6)."""
    if "mechscope" in raw:
        return DictionaryConfig.from_dict(raw["mechscope"])
    arch = raw.get("architecture", "standard")
    if arch not in _FROM_SAELENS:
        raise MechscopeError(f"cfg.json names architecture {arch!r}; mechscope reads {sorted(_FROM_SAELENS)}")
    metadata = raw.get("metadata") or {}
    transcoder = arch.endswith("transcoder")
    return DictionaryConfig(
        d_in=raw["d_in"], d_sae=raw["d_sae"], architecture=_FROM_SAELENS[arch], k=int(raw.get("k", 32) or 32),
        d_out=raw.get("d_out", raw["d_in"]) if transcoder else None, skip_connection="skip" in arch,
        hook_name_out=metadata.get("hook_name_out", raw.get("hook_name_out", "")) or "",
        relu_form="anthropic" if transcoder else "classic", apply_b_dec_to_input=raw.get("apply_b_dec_to_input", True),
        normalize_activations=raw.get("normalize_activations", "none") or "none",
        hook_name=metadata.get("hook_name", raw.get("hook_name", "")),
        model_name=metadata.get("model_name", raw.get("model_name", "")))


def from_state_dict(cfg: DictionaryConfig, tensors: dict[str, torch.Tensor], source: str) -> Dictionary:
    """Build a Dictionary and load SAELens-named tensors into it, checking every shape (every tensor is loaded
    or, like JumpReLU's log_threshold, derived: no random draw first)."""
    d = Dictionary(cfg, initialise=False)
    expected = {k: tuple(v.shape) for k, v in file_views(d).items()}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise MechscopeError(f"{source} lacks tensors {missing} needed by a {cfg.architecture} dictionary")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise MechscopeError(f"{source}: {name} has shape {tuple(tensors[name].shape)}, expected {shape} "
                                 f"(d_in={cfg.d_in}, d_sae={cfg.d_sae})")
    with torch.no_grad():
        for name in expected:
            target = getattr(d, "b_enc" if name == "b_gate" else name)
            value = (tensors[name].T if name == "W_skip" else tensors[name]).reshape(target.shape)
            if target.dim() == 2 and target.T.is_contiguous():  # latent-major W_enc: write in its memory order
                target, value = target.T, value.T  # (1.5x faster than a strided write: 131k x 2304 in 0.95 s)
            target.copy_(value)
    d.variant.after_load(d)
    return d


def read_folder(path: Path, config_file: str, weights_file: str, layout: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A folder's JSON config and safetensors tensors, with errors that name the layout it should follow."""
    try:
        return json.loads((path / config_file).read_text()), load_file(path / weights_file)
    except FileNotFoundError as err:
        raise MechscopeError(f"{path} is not a {layout} dictionary (needs {config_file} and {weights_file})") from err
    except (json.JSONDecodeError, Exception) as err:
        raise MechscopeError(f"{path}: corrupt dictionary files ({err.__class__.__name__}: {err})") from err


def load(path: str | Path) -> Dictionary:
    path = Path(path)
    raw, tensors = read_folder(path, CFG_FILE, WEIGHTS_FILE, "SAELens-layout")
    return from_state_dict(config_from(raw), tensors, str(path))


__all__ = ["CFG_FILE", "WEIGHTS_FILE", "config_from", "from_state_dict", "load", "read_folder", "save", "state_dict"]
