"""circuit-tracer's transcoder layouts (safety-research/circuit-tracer), read and written.

Both have a config.yaml naming `model_kind`, `feature_input_hook` and `feature_output_hook` (hook names
without the `blocks.{l}.` prefix, e.g. "ln2.hook_normalized" / "hook_mlp_out").
- transcoder_set: `transcoders` lists one file per layer, in layer order: Gemma Scope params.npz, or safetensors with W_enc
  [d_transcoder, d_model], W_dec [d_transcoder, d_out], b_enc, b_dec, optionally `activation_function.threshold`
  (JumpReLU; ReLU without it) and W_skip [d_out, d_in] (applied as x @ W_skip.T).
- cross_layer_transcoder: W_enc_{i}.safetensors with W_enc_{i} [d_transcoder, d_model], b_enc_{i}, b_dec_{i},
  optionally threshold_{i} (and mechscope's W_skip_{i} [d_in, d_out] for a CLT with a skip connection);
  W_dec_{i}.safetensors with W_dec_{i} [d_transcoder, n_layers - i, d_out].
Relative paths in `transcoders` are read relative to the config's directory. circuit-tracer's own MLP hooks
(`mlp.hook_in`: what the MLP reads, the pre-MLP norm's output with its weight; `mlp.hook_out`) are mechscope's
`ln2.hook_out` and `hook_mlp_out`; files are written with names TransformerLens and circuit-tracer know.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from mechscope.data.atomic import atomic_file
from mechscope.data.shard_format import write_safetensors
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats import gemmascope
from mechscope.dictionaries.formats.saelens import from_state_dict
from mechscope.errors import MechscopeError

CONFIG_FILE = "config.yaml"
THRESHOLD = "activation_function.threshold"
THEIR_HOOKS = {"mlp.hook_in": "ln2.hook_out", "mlp.hook_out": "hook_mlp_out"}  # circuit-tracer -> mechscope
OUR_HOOKS = {"ln2.hook_out": "mlp.hook_in"}  # mechscope -> circuit-tracer, where TransformerLens has no such name


def read_hook(name: str) -> str:
    """A hook name in a circuit-tracer config as mechscope names it."""
    return THEIR_HOOKS.get(name, name)


def written_hook(name: str) -> str:
    """A mechscope hook name as circuit-tracer's configs spell it."""
    return OUR_HOOKS.get(name, name)


def read_config(path: str | Path, kind: str) -> dict:
    file = Path(path) / CONFIG_FILE
    try:
        config = yaml.safe_load(file.read_text())
    except FileNotFoundError as err:
        raise MechscopeError(f"{path} has no circuit-tracer {CONFIG_FILE}") from err
    except yaml.YAMLError as err:
        raise MechscopeError(f"{file} is not valid YAML: {err}") from err
    if not isinstance(config, dict) or config.get("model_kind") != kind:
        found = config.get("model_kind") if isinstance(config, dict) else None
        raise MechscopeError(f"{file} has model_kind {found!r}, expected {kind!r}")
    for key in ("feature_input_hook", "feature_output_hook"):
        if key not in config:
            raise MechscopeError(f"{file} lacks {key}")
    return config


def write_config(path: Path, config: dict) -> None:
    with atomic_file(path / CONFIG_FILE) as handle:
        handle.write(yaml.safe_dump(config, sort_keys=False).encode())


def hook_suffix(hook: str, layer: int) -> str:
    """'blocks.3.ln2.hook_normalized' -> 'ln2.hook_normalized' (circuit-tracer's per-layer hook name)."""
    prefix = f"blocks.{layer}."
    if not hook.startswith(prefix):
        raise MechscopeError(f"circuit-tracer files name hooks per layer; {hook!r} is not a hook of block {layer}")
    return hook[len(prefix):]


def holds_clt(path: str | Path) -> bool:
    return (Path(path) / "W_enc_0.safetensors").exists()


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except FileNotFoundError as err:
        raise MechscopeError(f"missing transcoder file {file}") from err
    except Exception as err:  # safetensors raises its own error types for truncated or corrupt files
        raise MechscopeError(f"{file}: corrupt safetensors file ({err.__class__.__name__}: {err})") from err


# ----- per-layer transcoder sets ----------------------------------------------------------------
def load_layer(file: Path, layer: int, hook_in: str, hook_out: str) -> Dictionary:
    tensors = _load_tensors(file)
    missing = sorted({"W_enc", "W_dec", "b_enc", "b_dec"} - set(tensors))
    if missing:
        raise MechscopeError(f"{file} lacks {missing}; a circuit-tracer transcoder holds W_enc, W_dec, b_enc, b_dec")
    d_sae, d_in = tensors["W_enc"].shape
    jump = THRESHOLD in tensors or "threshold" in tensors
    cfg = DictionaryConfig(d_in, d_sae, "jumprelu" if jump else "relu", d_out=tensors["W_dec"].shape[-1],
                           skip_connection="W_skip" in tensors, hook_name=f"blocks.{layer}.{hook_in}",
                           hook_name_out=f"blocks.{layer}.{hook_out}")
    ours = {"W_enc": tensors["W_enc"].T, "W_dec": tensors["W_dec"], "b_enc": tensors["b_enc"], "b_dec": tensors["b_dec"]}
    if jump:
        ours["threshold"] = tensors.get(THRESHOLD, tensors.get("threshold"))
    if "W_skip" in tensors:
        ours["W_skip"] = tensors["W_skip"]  # [d_out, d_in], the orientation from_state_dict expects
    return from_state_dict(cfg, ours, str(file))


def layer_tensors(d: Dictionary) -> dict[str, torch.Tensor]:
    """circuit-tracer's tensors for one transcoder (JumpReLU-style thresholds for every thresholded variant)."""
    cfg = d.cfg
    if cfg.apply_b_dec_to_input or cfg.normalize_activations != "none" or cfg.architecture not in (
            "relu", "jumprelu", "batchtopk", "matryoshka"):
        raise MechscopeError(f"circuit-tracer reads ReLU and JumpReLU transcoders; this {cfg.architecture} "
                             "dictionary would compute something else there (a TopK transcoder has no threshold)")
    tensors = {"W_enc": d.W_enc.T, "W_dec": d.W_dec, "b_enc": d.b_enc, "b_dec": d.b_dec}
    if cfg.architecture != "relu":
        tensors[THRESHOLD] = d.threshold
    if d.W_skip is not None:
        tensors["W_skip"] = d.W_skip.T
    return {k: v.detach().contiguous().cpu().float() for k, v in tensors.items()}


def save_transcoder_set(tset, path: str | Path) -> Path:
    """Write a TranscoderSet as circuit-tracer's transcoder_set (layer_{l}.safetensors + config.yaml)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tset.layers != list(range(len(tset))):
        raise MechscopeError(f"circuit-tracer sets cover layers 0..n-1 in order; this set covers {tset.layers}")
    suffixes = {(hook_suffix(d.cfg.hook_name, layer), hook_suffix(d.cfg.hook_name_out, layer))
                for layer, d in zip(tset.layers, tset.dictionaries)}
    if len(suffixes) != 1:
        raise MechscopeError(f"circuit-tracer sets read and write the same hooks in every layer; got {sorted(suffixes)}")
    (hook_in, hook_out), = suffixes
    for layer, d in zip(tset.layers, tset.dictionaries):
        write_safetensors(path / f"layer_{layer}.safetensors", layer_tensors(d))
    write_config(path, {"model_kind": "transcoder_set", "model_name": tset.model_name,
                        "feature_input_hook": written_hook(hook_in), "feature_output_hook": written_hook(hook_out),
                        "scan": tset.model_name or "mechscope",
                        "transcoders": [f"layer_{layer}.safetensors" for layer in tset.layers]})
    return path


def load_transcoder_set(path: str | Path):
    from mechscope.dictionaries.transcoders import TranscoderSet

    path = Path(path)
    config = read_config(path, "transcoder_set")
    files = config.get("transcoders") or []
    if not files:
        raise MechscopeError(f"{path / CONFIG_FILE} lists no transcoders")
    if any(str(f).startswith("hf://") for f in files):
        raise MechscopeError(f"{path / CONFIG_FILE} names Hugging Face URIs; download the files and list local paths")
    hooks = read_hook(config["feature_input_hook"]), read_hook(config["feature_output_hook"])
    dictionaries = [gemmascope.load(path / f, *(f"blocks.{layer}.{h}" for h in hooks)) if str(f).endswith(".npz")
                    else load_layer(path / f, layer, *hooks) for layer, f in enumerate(files)]
    return TranscoderSet(dictionaries, list(range(len(files))), config.get("model_name", "") or "")


# ----- cross-layer transcoders -------------------------------------------------------------------
def save_clt(clt, path: str | Path) -> Path:
    """Write a CrossLayerTranscoder in circuit-tracer's CLT layout; mechscope's config rides along in config.yaml."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = clt.cfg
    for i in range(cfg.n_layers):
        skip = {} if clt.W_skip is None else {f"W_skip_{i}": clt.W_skip[i].detach().contiguous().cpu()}
        write_safetensors(path / f"W_enc_{i}.safetensors", {
            f"W_enc_{i}": clt.W_enc[i].detach().T.contiguous().cpu(), f"b_enc_{i}": clt.b_enc[i].detach().cpu(),
            f"b_dec_{i}": clt.b_dec[i].detach().cpu(), f"threshold_{i}": clt.threshold[i].detach().cpu(), **skip})
        write_safetensors(path / f"W_dec_{i}.safetensors", {f"W_dec_{i}": clt.W_dec[i].detach().contiguous().cpu()})
    write_config(path, {"model_kind": "cross_layer_transcoder", "model_name": cfg.model_name,
                        "feature_input_hook": written_hook(cfg.hook_in.removeprefix("blocks.{layer}.")),
                        "feature_output_hook": written_hook(cfg.hook_out.removeprefix("blocks.{layer}.")),
                        "mechscope": cfg.to_dict()})
    return path


def load_clt(path: str | Path):
    """A CrossLayerTranscoder from circuit-tracer's CLT files (config.yaml optional: hooks default to
    circuit-tracer's hook_resid_mid -> hook_mlp_out)."""
    from mechscope.dictionaries.clt import CLTConfig, CrossLayerTranscoder

    path = Path(path)
    config = read_config(path, "cross_layer_transcoder") if (path / CONFIG_FILE).exists() else {}
    n_layers = 0
    while (path / f"W_enc_{n_layers}.safetensors").exists():
        n_layers += 1
    if n_layers == 0:
        raise MechscopeError(f"{path} holds no W_enc_0.safetensors: not a circuit-tracer CLT")
    enc = [_load_tensors(path / f"W_enc_{i}.safetensors") for i in range(n_layers)]
    dec = [_load_tensors(path / f"W_dec_{i}.safetensors") for i in range(n_layers)]
    for i, (e, dd) in enumerate(zip(enc, dec)):
        missing = sorted({f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}"} - set(e)) + sorted({f"W_dec_{i}"} - set(dd))
        if missing:
            raise MechscopeError(f"{path}: layer {i} lacks {missing}")
    d_latent, d_in = enc[0]["W_enc_0"].shape
    d_out = dec[0]["W_dec_0"].shape[-1]
    saved = config.get("mechscope") or {}
    cfg = CLTConfig.from_dict({"activation": "jumprelu", **saved, "n_layers": n_layers, "d_in": d_in,
                               "skip_connection": "W_skip_0" in enc[0],
                               "d_latent": d_latent, "d_out": d_out if d_out != d_in else saved.get("d_out"),
                               "hook_in": "blocks.{layer}." + read_hook(config.get("feature_input_hook",
                                                                                   "hook_resid_mid")),
                               "hook_out": "blocks.{layer}." + read_hook(config.get("feature_output_hook",
                                                                                    "hook_mlp_out"))})
    clt = CrossLayerTranscoder(cfg, initialise=False)  # the files fill every tensor
    with torch.no_grad():
        for i in range(n_layers):
            expected = {f"W_enc_{i}": (d_latent, d_in), f"W_dec_{i}": (d_latent, n_layers - i, d_out),
                        f"b_enc_{i}": (d_latent,), f"b_dec_{i}": (d_out,)}
            tensors = {**enc[i], **dec[i]}
            for name, shape in expected.items():
                if tuple(tensors[name].shape) != shape:
                    raise MechscopeError(f"{path}: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
            clt.W_enc[i].copy_(tensors[f"W_enc_{i}"].T)
            clt.W_dec[i].copy_(tensors[f"W_dec_{i}"])
            clt.b_enc[i].copy_(tensors[f"b_enc_{i}"])
            clt.b_dec[i].copy_(tensors[f"b_dec_{i}"])
            clt.threshold[i].copy_(tensors.get(f"threshold_{i}", torch.zeros(d_latent)).reshape(-1))
            if clt.W_skip is not None:
                clt.W_skip[i].copy_(tensors[f"W_skip_{i}"])
        clt.log_threshold.copy_(clt.threshold.clamp_min(1e-30).log())
    return clt
