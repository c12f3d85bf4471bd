"""TranscoderSet: one transcoder (a Dictionary with an output hook) per MLP layer of a model.

On disk: a directory with `transcoder_set.json` (layers, hooks) and one SAELens-layout transcoder per layer
(`layer_{l}/`); `load` also reads circuit-tracer's per-layer sets (config.yaml, model_kind: transcoder_set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats import saelens
from mechscope.dictionaries.replacement import check_replacement, replacement_hooks
from mechscope.errors import MechscopeError
from mechscope.manifest import build_manifest, write_manifest

SET_FILE = "transcoder_set.json"
SET_FORMAT = "mechscope.transcoder_set"


@dataclass
class TranscoderSet:
    """`dictionaries[i]` replaces the MLP of block `layers[i]`: it reads its `cfg.hook_name` and predicts its
    `cfg.hook_name_out`. A graph builder takes `tset.dictionaries` as the per-layer Sequence[Dictionary]."""

    dictionaries: list[Dictionary]
    layers: list[int]
    model_name: str = ""

    def __post_init__(self):
        if len(self.dictionaries) != len(self.layers) or len(set(self.layers)) != len(self.layers):
            raise MechscopeError(f"a transcoder set needs one dictionary per distinct layer; got "
                                 f"{len(self.dictionaries)} dictionaries for layers {self.layers}")
        for layer, d in zip(self.layers, self.dictionaries):
            if not (d.cfg.hook_name and d.cfg.hook_name_out):
                raise MechscopeError(f"the layer-{layer} dictionary records no input and output hook "
                                     f"(hook_name={d.cfg.hook_name!r}, hook_name_out={d.cfg.hook_name_out!r})")

    def __len__(self) -> int:
        return len(self.dictionaries)

    @property
    def input_hooks(self) -> list[str]:
        return [d.cfg.hook_name for d in self.dictionaries]

    @property
    def output_hooks(self) -> list[str]:
        return [d.cfg.hook_name_out for d in self.dictionaries]

    def widths(self, i: int) -> tuple[int, int]:
        return self.dictionaries[i].d_in, self.dictionaries[i].d_out

    def to(self, device: str | torch.device) -> "TranscoderSet":
        self.dictionaries = [d.to(device) for d in self.dictionaries]
        return self

    # ----- the MLPReplacement protocol ---------------------------------------------------------
    def encode_layer(self, i: int, x: Tensor) -> Tensor:
        return self.dictionaries[i].encode(x)

    def decode_layer(self, i: int, codes: list[Tensor], x: Tensor) -> Tensor:
        return self.dictionaries[i].output(codes[i], x)

    def replacement_hooks(self, error_term: bool = False) -> list:
        """Hook functions replacing every MLP output by its transcoder's prediction (see `replacement_hooks`)."""
        return replacement_hooks(self, error_term)

    def check_against(self, model, every_layer: bool = True) -> None:
        """Raise a MechscopeError when hooks, widths or the layer count do not match `model`."""
        check_replacement(self, model, every_layer)

    # ----- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for layer, d in zip(self.layers, self.dictionaries):
            saelens.save(d, path / f"layer_{layer}")
        record = {"format": SET_FORMAT, "model_name": self.model_name, "layers": self.layers,
                  "directories": [f"layer_{layer}" for layer in self.layers],
                  "input_hooks": self.input_hooks, "output_hooks": self.output_hooks}
        atomic_write_json(path / SET_FILE, record)
        write_manifest(path, build_manifest(SET_FORMAT, model={"name": self.model_name}, config=record))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "TranscoderSet":
        """A set written by `save`, or a circuit-tracer per-layer set (config.yaml)."""
        from mechscope.dictionaries.formats import circuit_tracer

        path = Path(path)
        if (path / circuit_tracer.CONFIG_FILE).exists() and not (path / SET_FILE).exists():
            return circuit_tracer.load_transcoder_set(path).to(device)
        try:
            record = json.loads((path / SET_FILE).read_text())
        except FileNotFoundError as err:
            raise MechscopeError(f"{path} holds no transcoder set (expected {SET_FILE} or circuit-tracer's "
                                 f"{circuit_tracer.CONFIG_FILE})") from err
        except json.JSONDecodeError as err:
            raise MechscopeError(f"{path / SET_FILE} is not valid JSON: {err.msg}") from err
        if record.get("format") != SET_FORMAT:
            raise MechscopeError(f"{path / SET_FILE} has format {record.get('format')!r}, expected {SET_FORMAT!r}")
        dictionaries = [saelens.load(path / name) for name in record["directories"]]
        return cls(dictionaries, list(record["layers"]), record.get("model_name", "")).to(device)


def holds_transcoders(path: str | Path) -> bool:
    """A transcoder set (mechscope's or circuit-tracer's) or a CLT directory, rather than one dictionary."""
    from mechscope.dictionaries.formats import circuit_tracer

    path = Path(path)
    return (path / SET_FILE).exists() or (path / circuit_tracer.CONFIG_FILE).exists() or circuit_tracer.holds_clt(path)


def load_transcoders(path: str | Path, device: str = "cpu"):
    """A per-layer TranscoderSet or a CrossLayerTranscoder, whichever the directory holds."""
    from mechscope.dictionaries.clt import CrossLayerTranscoder
    from mechscope.dictionaries.formats import circuit_tracer

    if circuit_tracer.holds_clt(path) or CrossLayerTranscoder.holds(path):
        return CrossLayerTranscoder.load(path, device)
    return TranscoderSet.load(path, device)
