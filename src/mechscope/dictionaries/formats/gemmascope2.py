"""Gemma Scope 2 (google/gemma-scope-2-*), JumpReLU throughout.

- SAEs and transcoders: a folder with config.json (hf_hook_point_in/out, width, l0, architecture "jump_relu",
  affine_connection, type, model_name) and params.safetensors (w_enc [d_in, width], w_dec [width, d_out], b_enc,
  b_dec, threshold; an affine transcoder adds affine_skip_connection [d_in, d_out], applied as x @ A).
- Cross-layer transcoders (`clt/width_262k_l0_medium[_affine]`) and crosscoders (`crosscoder/layer_7_13_17_22_
  width_262k_l0_medium`): params_layer_{i}.safetensors, one per layer read. A CLT file i holds layer i's w_enc
  [d_in, width], b_enc, threshold, b_dec (of output layer i), optional affine_skip_connection, and w_dec [width,
  n_layers, d_out] of which the layers >= i are used. A crosscoder's latents are shared: file i holds the encoder
  slice reading layer i and that layer's b_dec; w_dec [width, n_layers, d_in], b_enc and threshold are the same in
  every file (checked).
HF module names map to mechscope hooks; a transcoder reads one and writes the other."""

from __future__ import annotations

import re
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats.saelens import from_state_dict, read_folder
from mechscope.errors import MechscopeError

CONFIG_FILE, WEIGHTS_FILE = "config.json", "params.safetensors"
LAYER_FILE = "params_layer_{i}.safetensors"
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
    if holds_layers(path):
        if multilayer_kind(path) == "clt":
            raise MechscopeError(f"{path} holds a Gemma Scope 2 cross-layer transcoder, not a dictionary: load it with "
                                 "load_transcoders (or CrossLayerTranscoder.load)")
        return load_crosscoder(path)
    raw, tensors = read_folder(path, CONFIG_FILE, WEIGHTS_FILE, "Gemma Scope 2")
    kind = raw.get("type", "sae")
    affine = "affine_skip_connection" in tensors
    if kind not in ("sae", "transcoder") or (affine and kind != "transcoder"):
        raise MechscopeError(f"{path}: expected a Gemma Scope 2 SAE or transcoder (an affine skip connection only "
                             f"on transcoders); this one has type={kind!r}, affine_skip_connection={affine}")
    if bool(raw.get("affine_connection")) != affine:
        raise MechscopeError(f"{path}: config.json says affine_connection={raw.get('affine_connection')}, but "
                             f"{WEIGHTS_FILE} {'holds' if affine else 'lacks'} affine_skip_connection")
    if raw.get("architecture", "jump_relu") != "jump_relu":
        raise MechscopeError(f"{path}: architecture {raw['architecture']!r}; Gemma Scope 2 folders hold jump_relu")
    d_in, width = tensors["w_enc"].shape
    transcoder = kind == "transcoder"
    cfg = DictionaryConfig(d_in=d_in, d_sae=width, architecture="jumprelu", apply_b_dec_to_input=False,
                           d_out=tensors["w_dec"].shape[1] if transcoder else None, skip_connection=affine,
                           hook_name=mechscope_hook(raw.get("hf_hook_point_in", "")),
                           hook_name_out=mechscope_hook(raw.get("hf_hook_point_out", "")) if transcoder else "",
                           model_name=raw.get("model_name", ""))
    if raw.get("width") not in (None, width):
        raise MechscopeError(f"{path}: config.json says width {raw['width']}, w_enc has {width} columns")
    state = {"W_enc": tensors["w_enc"], "W_dec": tensors["w_dec"], "b_enc": tensors["b_enc"],
             "b_dec": tensors["b_dec"], "threshold": tensors["threshold"]}
    if affine:
        state["W_skip"] = tensors["affine_skip_connection"].T  # from_state_dict takes SAELens's [d_out, d_in]
    return from_state_dict(cfg, state, str(path))


def save(d: Dictionary, path: str | Path) -> Path:
    cfg = d.cfg
    if cfg.architecture != "jumprelu" or cfg.apply_b_dec_to_input or cfg.n_sources > 1:
        raise MechscopeError("Gemma Scope 2 folders hold JumpReLU dictionaries that add no b_dec before the encoder "
                             f"(crosscoders: save_crosscoder); got {cfg.architecture} (apply_b_dec_to_input="
                             f"{cfg.apply_b_dec_to_input}, n_sources={cfg.n_sources})")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {"w_enc": d.W_enc, "w_dec": d.W_dec, "b_enc": d.b_enc, "b_dec": d.b_dec, "threshold": d.threshold}
    if d.W_skip is not None:
        tensors["affine_skip_connection"] = d.W_skip
    write_safetensors(path / WEIGHTS_FILE, {k: v.detach().cpu().float().contiguous() for k, v in tensors.items()})
    hook_in = hf_hook(cfg.hook_name)
    atomic_write_json(path / CONFIG_FILE, {
        "hf_hook_point_in": hook_in, "hf_hook_point_out": hf_hook(cfg.hook_name_out) if cfg.is_transcoder else hook_in,
        "width": cfg.d_sae, "l0": None, "architecture": "jump_relu", "affine_connection": d.W_skip is not None,
        "type": "transcoder" if cfg.is_transcoder else "sae", "model_name": cfg.model_name})
    return path


# ----- multi-layer folders: cross-layer transcoders and crosscoders -----------------------------------------------
def holds_layers(path: str | Path) -> bool:
    return (Path(path) / LAYER_FILE.format(i=0)).exists()


def multilayer_kind(path: str | Path) -> str:
    """"clt" or "crosscoder": config.json's type where it says, else the files (a crosscoder's layer files share
    w_dec, b_enc and threshold; a CLT's differ)."""
    path = Path(path)
    kind = _config(path).get("type")
    if kind in ("clt", "crosscoder"):
        return kind
    first, second = (path / LAYER_FILE.format(i=i) for i in (0, 1))
    if not second.exists():
        return "crosscoder" if "crosscoder" in path.parts else "clt"
    with safe_open(first, "pt") as a, safe_open(second, "pt") as b:
        return "crosscoder" if torch.equal(a.get_tensor("b_enc"), b.get_tensor("b_enc")) else "clt"


def _layer_files(path: Path) -> list[dict[str, torch.Tensor]]:
    """Every params_layer_{i}.safetensors in order, as float32 tensors; a clear error for a gap or a bad file."""
    files, i = [], 0
    while (path / LAYER_FILE.format(i=i)).exists():
        try:
            files.append({k: v.float() for k, v in load_file(path / LAYER_FILE.format(i=i)).items()})
        except Exception as err:
            raise MechscopeError(f"{path / LAYER_FILE.format(i=i)}: corrupt safetensors ({err})") from err
        i += 1
    if not files:
        raise MechscopeError(f"{path} holds no {LAYER_FILE.format(i=0)}: not a Gemma Scope 2 CLT or crosscoder")
    for i, tensors in enumerate(files):
        missing = sorted({"w_enc", "w_dec", "b_enc", "b_dec", "threshold"} - set(tensors))
        if missing:
            raise MechscopeError(f"{path / LAYER_FILE.format(i=i)} lacks {missing}")
    n = len(files)
    if files[0]["w_dec"].dim() != 3 or files[0]["w_dec"].shape[1] != n:
        raise MechscopeError(f"{path}: w_dec has shape {tuple(files[0]['w_dec'].shape)}, expected [width, {n}, d] "
                             f"for {n} layer files")
    return files


def _config(path: Path) -> dict:
    file = path / CONFIG_FILE
    return json.loads(file.read_text()) if file.exists() else {}


def load_clt(path: str | Path, first_layer: int = 0):
    """A CrossLayerTranscoder from a Gemma Scope 2 `clt/...` folder (hooks from config.json where it names them)."""
    from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder

    path = Path(path)
    files, raw = _layer_files(path), _config(path)
    n = len(files)
    d_in, width = files[0]["w_enc"].shape
    d_out = files[0]["w_dec"].shape[2]
    affine = ["affine_skip_connection" in f for f in files]
    if len(set(affine)) != 1:
        raise MechscopeError(f"{path}: affine_skip_connection is in some layer files but not all ({affine})")
    hooks = {k: _layer_pattern(raw.get(f"hf_hook_point_{k}", "")) for k in ("in", "out")}
    cfg = CLTConfig(n_layers=n, d_in=d_in, d_latent=width, d_out=d_out if d_out != d_in else None,
                    activation="jumprelu", first_layer=first_layer, skip_connection=affine[0],
                    model_name=raw.get("model_name", ""),
                    **{f"hook_{k}": v for k, v in hooks.items() if v})
    clt = CrossLayerTranscoder(cfg, initialise=False)  # the files fill every tensor
    with torch.no_grad():
        for i, tensors in enumerate(files):
            _check_shapes(path, i, tensors, {"w_enc": (d_in, width), "w_dec": (width, n, d_out), "b_enc": (width,),
                                             "threshold": (width,), "b_dec": (d_out,)})
            clt.W_enc[i].copy_(tensors["w_enc"])
            clt.W_dec[i].copy_(tensors["w_dec"][:, i:])
            clt.b_enc[i].copy_(tensors["b_enc"])
            clt.b_dec[i].copy_(tensors["b_dec"])
            clt.threshold[i].copy_(tensors["threshold"])
            if clt.W_skip is not None:
                clt.W_skip[i].copy_(tensors["affine_skip_connection"])
        clt.log_threshold.copy_(clt.threshold.clamp_min(1e-30).log())
    return clt


def save_clt(clt, path: str | Path) -> Path:
    """Write a JumpReLU CrossLayerTranscoder as a Gemma Scope 2 `clt/...` folder (w_dec zero above the diagonal)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    n, width, d_out = clt.cfg.n_layers, clt.cfg.d_latent, clt.cfg.d_output
    for i in range(n):
        w_dec = torch.zeros(width, n, d_out)
        w_dec[:, i:] = clt.W_dec[i].detach().cpu()
        tensors = {"w_enc": clt.W_enc[i], "w_dec": w_dec, "b_enc": clt.b_enc[i], "b_dec": clt.b_dec[i],
                   "threshold": clt.threshold[i]}
        if clt.W_skip is not None:
            tensors["affine_skip_connection"] = clt.W_skip[i]
        write_safetensors(path / LAYER_FILE.format(i=i),
                          {k: v.detach().cpu().float().contiguous() for k, v in tensors.items()})
    atomic_write_json(path / CONFIG_FILE, {
        "hf_hook_point_in": hf_hook(clt.cfg.hook_in.format(layer=0)).replace(".0.", ".{layer}."),
        "hf_hook_point_out": hf_hook(clt.cfg.hook_out.format(layer=0)).replace(".0.", ".{layer}."),
        "width": width, "architecture": "jump_relu", "affine_connection": clt.W_skip is not None, "type": "clt",
        "model_name": clt.cfg.model_name})
    return path


def load_crosscoder(path: str | Path, layers: list[int] | None = None) -> Dictionary:
    """A crosscoder Dictionary (JumpReLU over the concatenated layers) from a Gemma Scope 2 `crosscoder/layer_A_B_
    .._width_...` folder; `layers` (else read from the folder name) name the residual-stream hooks it binds to."""
    path = Path(path)
    files, raw = _layer_files(path), _config(path)
    n = len(files)
    d_in, width = files[0]["w_enc"].shape
    for i, tensors in enumerate(files):
        _check_shapes(path, i, tensors, {"w_enc": (d_in, width), "w_dec": (width, n, d_in), "b_enc": (width,),
                                         "threshold": (width,), "b_dec": (d_in,)})
        for shared in ("w_dec", "b_enc", "threshold"):
            if not torch.equal(tensors[shared], files[0][shared]):
                raise MechscopeError(f"{path / LAYER_FILE.format(i=i)}: {shared} differs from layer file 0's; a "
                                     "crosscoder's latents are shared by every layer file")
    found = re.search(r"layer_(\d+(?:_\d+)*)_width", path.name)
    layers = layers or ([int(x) for x in found.group(1).split("_")] if found else [])
    hooks = ",".join(f"blocks.{layer}.hook_resid_post" for layer in layers) if len(layers) == n else ""
    cfg = DictionaryConfig(d_in=n * d_in, d_sae=width, architecture="jumprelu", n_sources=n,
                           apply_b_dec_to_input=False, hook_name=hooks, model_name=raw.get("model_name", ""))
    return from_state_dict(cfg, {"W_enc": torch.stack([f["w_enc"] for f in files]), "W_dec": files[0]["w_dec"],
                                 "b_enc": files[0]["b_enc"], "b_dec": torch.stack([f["b_dec"] for f in files]),
                                 "threshold": files[0]["threshold"]}, str(path))


def save_crosscoder(d: Dictionary, path: str | Path) -> Path:
    """Write a JumpReLU crosscoder Dictionary as a Gemma Scope 2 `crosscoder/...` folder."""
    n = d.cfg.n_sources
    if d.cfg.architecture != "jumprelu" or n < 2 or d.cfg.apply_b_dec_to_input:
        raise MechscopeError(f"Gemma Scope 2 crosscoders are JumpReLU over >= 2 sources with no b_dec subtracted "
                             f"from the input; got {d.cfg.architecture} with n_sources={n}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    W_enc, b_dec = d.W_enc.detach().cpu().reshape(n, -1, d.d_sae), d.b_dec.detach().cpu().reshape(n, -1)
    w_dec = d.W_dec.detach().cpu().reshape(d.d_sae, n, -1)
    for i in range(n):
        write_safetensors(path / LAYER_FILE.format(i=i), {k: v.float().contiguous() for k, v in {
            "w_enc": W_enc[i], "w_dec": w_dec, "b_enc": d.b_enc.detach().cpu(), "b_dec": b_dec[i],
            "threshold": d.threshold.detach().cpu()}.items()})
    atomic_write_json(path / CONFIG_FILE, {"width": d.d_sae, "architecture": "jump_relu", "type": "crosscoder",
                                           "model_name": d.cfg.model_name})
    return path


def _check_shapes(path: Path, i: int, tensors: dict, expected: dict) -> None:
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise MechscopeError(f"{path / LAYER_FILE.format(i=i)}: {name} has shape {tuple(tensors[name].shape)}, "
                                 f"expected {shape}")


def _layer_pattern(hf_name: str) -> str:
    """A config's per-layer HF hook point ("model.layers.{layer}.output" or one layer's name) as a mechscope hook
    pattern with {layer}; "" where none maps."""
    hook = mechscope_hook(hf_name.replace("{layer}", "0"))
    return re.sub(r"^blocks\.\d+\.", "blocks.{layer}.", hook) if hook else ""
