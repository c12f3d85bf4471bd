"""CircuitResult: a tensor of scores with named axes and labels, saved as safetensors + JSON + heatmaps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from mechscope.data.atomic import atomic_write_json
from mechscope.errors import MechscopeError


@dataclass
class CircuitResult:
    """Scores over named axes (e.g. ("layer", "head")) plus the baselines that give them meaning.

    For patching, `values` is the mean metric of each patched run; `clean` and `corrupted` are the
    unpatched metrics, so `normalized()` reads 0 at the corrupted run and 1 at the clean one.
    """

    values: Tensor
    axes: tuple[str, ...]
    labels: dict[str, list[str]]
    kind: str  # "activation_patching" | "attribution_patching" | "dla" | "head_scores" | ...
    info: dict = field(default_factory=dict)
    clean: float | None = None
    corrupted: float | None = None

    def __post_init__(self):
        if self.values.ndim != len(self.axes):
            raise MechscopeError(f"values have {self.values.ndim} dims but axes {self.axes} name {len(self.axes)}")

    @property
    def baseline(self) -> float | None:
        """The metric of the run that patches are applied to (corrupted when denoising, clean when noising)."""
        return self.clean if self.info.get("noising") else self.corrupted

    def effect(self) -> Tensor:
        """Each patch's change of the metric relative to the unpatched run it was applied to."""
        if self.baseline is None:
            raise MechscopeError(f"a {self.kind} result has no baseline to measure effects against")
        return self.values - self.baseline

    def normalized(self) -> Tensor:
        """(value - corrupted) / (clean - corrupted): 0 at the corrupted run, 1 at the clean run."""
        if self.clean is None or self.corrupted is None:
            raise MechscopeError(f"a {self.kind} result has no clean and corrupted metrics to normalise by")
        gap = self.clean - self.corrupted
        if abs(gap) < 1e-12:
            raise MechscopeError("clean and corrupted metrics are equal; the task does not separate them")
        return (self.values - self.corrupted) / gap

    def top(self, k: int = 10, by: str = "abs") -> list[tuple[str, float]]:
        """The k largest entries as ("layer=3 head=5", value), ranked by |value| ("abs") or value ("value")."""
        flat = self.values.reshape(-1)
        order = (flat.abs() if by == "abs" else flat).argsort(descending=True)[:k]
        return [(self.label_of(int(i)), float(flat[i])) for i in order]

    def label_of(self, flat_index: int) -> str:
        index = torch.unravel_index(torch.tensor(flat_index), self.values.shape)
        return " ".join(f"{axis}={self.labels[axis][int(i)]}" for axis, i in zip(self.axes, index))

    def summary(self) -> dict:
        return {"kind": self.kind, "axes": list(self.axes), "shape": list(self.values.shape),
                "clean": self.clean, "corrupted": self.corrupted, "info": self.info,
                "top": [{"entry": name, "value": value} for name, value in self.top(20)]}

    def save(self, out: str | Path, title: str | None = None) -> dict[str, str]:
        """Write values.safetensors, result.json, heatmap.png and heatmap.html into `out`."""
        from mechscope.circuits.plots import heatmap_html, heatmap_png

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"values": self.values.detach().float().cpu().contiguous()}, str(out / "values.safetensors"))
        atomic_write_json(out / "result.json", {**self.summary(), "labels": self.labels})
        title = title or f"{self.kind} ({' x '.join(self.axes)})"
        return {"values": str(out / "values.safetensors"), "json": str(out / "result.json"),
                "png": str(heatmap_png(self, out / "heatmap.png", title)),
                "html": str(heatmap_html(self, out / "heatmap.html", title))}

    @classmethod
    def load(cls, directory: str | Path) -> "CircuitResult":
        directory = Path(directory)
        try:
            meta = json.loads((directory / "result.json").read_text())
            values = load_file(str(directory / "values.safetensors"))["values"]
        except (OSError, ValueError, KeyError) as err:
            raise MechscopeError(f"{directory} holds no circuit result: expected result.json and "
                                 f"values.safetensors written by CircuitResult.save") from err
        return cls(values, tuple(meta["axes"]), meta["labels"], meta["kind"], meta["info"], meta["clean"],
                   meta["corrupted"])
