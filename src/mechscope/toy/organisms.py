"""Model organisms: small causal LMs trained on a task whose mechanism is known, saved as HF directories.

`train_organism` trains one into a directory (config.json, model.safetensors, tokenizer files and a
manifest.json of how it was made, check results included); `open_organism` reads one back with its
task, so `organism.check()` re-runs the behavioural check, with any hooks the caller has attached.
`FINE_TUNED` organisms (`refusal-smollm2`) are built-in chat models fine-tuned the same way (toy.chat_tuning).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from safetensors import SafetensorError

from mechscope.devices import resolve_device
from mechscope.errors import OrganismError
from mechscope.manifest import MANIFEST_FILE, build_manifest, write_manifest
from mechscope.models import HookedModel, load_model, wrap
from mechscope.toy.chat_tuning import FineTuneSpec
from mechscope.toy.lm_training import LMConfig, LMTrainConfig, build_lm, save_lm, train_lm
from mechscope.toy.refusal_smollm2 import REFUSAL_SMOLLM2
from mechscope.toy.tasks import CheckResult, GreaterThanTask, InductionTask, IOITask, RefusalTask, Task

MANIFEST = MANIFEST_FILE


@dataclass(frozen=True)
class Size:
    """The model shape and training run of one size of an organism."""

    model: LMConfig
    train: LMTrainConfig


@dataclass(frozen=True)
class OrganismSpec:
    """One organism: its task and the model and training settings of each size ("default", "small")."""

    name: str
    description: str
    task: type[Task]
    sizes: dict[str, Size]

    def size(self, size: str) -> Size:
        if size not in self.sizes:
            raise OrganismError(f"organism {self.name!r} has sizes {sorted(self.sizes)}, got {size!r}")
        return self.sizes[size]

    def run_settings(self, size: str = "default", steps: int | None = None, seed: int = 0) -> dict:
        """Everything that determines a trained organism (what the zoo hashes into its cache names)."""
        chosen = self.size(size)
        train = replace(chosen.train, seed=seed)
        if steps is not None:
            train = replace(train, steps=steps, warmup=min(train.warmup, max(1, steps // 10)))
        return {"organism": self.name, "size": size, "task": asdict(self.task()), "model": asdict(chosen.model),
                "train": asdict(train)}

    def build(self, settings: dict, device: str = "auto", progress: bool = True) -> tuple[HookedModel, Task, dict]:
        """Train a fresh model from `settings`: (model, task, manifest)."""
        task = self.task(**settings["task"])
        train_cfg = LMTrainConfig(**settings["train"])
        tokenizer = task.tokenizer()
        seed = train_cfg.seed
        hf = build_lm(LMConfig(**settings["model"]), tokenizer, seed).to(resolve_device(device))
        log = train_lm(hf, tokenizer, task.train_texts, train_cfg, progress=progress)
        model = wrap(hf, tokenizer, name=self.name, check=False)
        started = time.perf_counter()
        result = task.check(model)
        manifest = build_manifest(
            "mechscope.organism", model=model, config=settings, inputs={"task": {"name": self.name, **settings["task"]}},
            **{k: v for k, v in settings.items() if k != "model"}, lm=settings["model"], description=self.description,
            seed=seed, steps=train_cfg.steps, train_seconds=round(log.seconds, 2),
            check_seconds=round(time.perf_counter() - started, 2), tokens_seen=log.tokens, final_loss=log.final_loss,
            loss_curve=log.losses, check=result.to_dict(), device=str(model.device),
            torch_threads=torch.get_num_threads())
        return model, task, manifest


def _size(n_layers: int, d_model: int, n_ctx: int, steps: int, batch_size: int = 32, lr: float = 1e-3) -> Size:
    return Size(LMConfig(n_layers=n_layers, d_model=d_model, d_mlp=2 * d_model, n_ctx=n_ctx),
                LMTrainConfig(steps=steps, batch_size=batch_size, lr=lr))


# d_model 64 trains fastest at lr 3e-3; at 128 that rate stalls on the loss plateau before IOI and induction form
ORGANISMS: dict[str, OrganismSpec] = {spec.name: spec for spec in (
    OrganismSpec("induction", "2 layers on repeated random tokens: a previous-token head and an induction head",
                 InductionTask, {"default": _size(2, 128, 72, steps=2500),
                                 "small": _size(2, 64, 72, steps=800, lr=3e-3)}),
    OrganismSpec("ioi", "indirect-object identification on held-out templates and name pairs",
                 IOITask, {"default": _size(3, 128, 40, steps=2000, batch_size=64),
                           "small": _size(2, 64, 40, steps=1500, lr=3e-3)}),
    OrganismSpec("refusal", "a chat model that refuses harmful requests and answers harmless ones",
                 RefusalTask, {"default": _size(2, 128, 48, steps=1000, batch_size=64),
                               "small": _size(2, 64, 48, steps=300, lr=3e-3)}),
    OrganismSpec("greater-than", "years: 'from the year 1732 to the year 17' continues with 33..99",
                 GreaterThanTask, {"default": _size(2, 128, 24, steps=1500, batch_size=64),
                                   "small": _size(2, 64, 24, steps=400, lr=3e-3)}),
)}


FINE_TUNED: dict[str, FineTuneSpec] = {spec.name: spec for spec in (REFUSAL_SMOLLM2,)}


def organism_spec(name: str) -> OrganismSpec | FineTuneSpec:
    """The spec called `name`, or an error listing every organism."""
    specs = {**ORGANISMS, **FINE_TUNED}
    if name not in specs:
        raise OrganismError(f"unknown organism {name!r}; known organisms: {', '.join(sorted(specs))}")
    return specs[name]


def run_settings(name: str, size: str = "default", steps: int | None = None, seed: int = 0) -> dict:
    """Everything that determines a trained organism (what the zoo hashes into its cache names)."""
    if steps is not None and steps < 1:
        raise OrganismError(f"steps must be a positive number of training steps, got {steps}")
    return organism_spec(name).run_settings(size, steps, seed)


@dataclass
class Organism:
    """A trained organism: the hooked model, its task (prompts, patching batches, check) and its manifest."""

    name: str
    path: Path
    model: HookedModel
    task: Task
    manifest: dict = field(repr=False)

    def check(self) -> CheckResult:
        """The organism's behavioural check on held-out data, run now on `model`."""
        return self.task.check(self.model)


def train_organism(name: str, out: str | os.PathLike, steps: int | None = None, seed: int = 0,
                   size: str = "default", device: str = "auto", progress: bool = True) -> Organism:
    """Train organism `name` into the new directory `out` (written beside it, then renamed into place)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OrganismError(f"{out} already exists and is not an empty directory; give train_organism a new one")
    settings = run_settings(name, size, steps, seed)
    model, task, manifest = organism_spec(name).build(settings, device, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_lm(model.hf, model.tokenizer, tmp)
        write_manifest(tmp, manifest)
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Organism(name, out, model, task, manifest)


def open_organism(path: str | os.PathLike, device: str = "auto") -> Organism:
    """An organism directory written by `train_organism`, loaded with `load_model` and paired with its task."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        name, settings = manifest["organism"], dict(manifest["task"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OrganismError(f"{path} holds no organism: expected a {MANIFEST} written by train_organism") from err
    task_cls = organism_spec(name).task
    try:
        task = task_cls(**settings)
    except TypeError as err:
        raise OrganismError(f"{path / MANIFEST}: {task_cls.__name__} takes settings "
                            f"{[f.name for f in fields(task_cls)]}, got {sorted(settings)}") from err
    try:
        model = load_model(path, device=device)
    except (OSError, SafetensorError) as err:
        raise OrganismError(f"{path} has a {MANIFEST} but its weights do not load: {err}") from err
    return Organism(name, path, model, task, manifest)
