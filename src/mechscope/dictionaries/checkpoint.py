"""Training checkpoints: parameters, Adam moments and trainer state, written atomically, restored exactly."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from mechscope.data.atomic import atomic_write_json
from mechscope.data.shard_format import write_safetensors
from mechscope.errors import MechscopeError

STATE_FILE, TENSORS_FILE = "trainer_state.json", "trainer_tensors.safetensors"


def save_checkpoint(directory: Path, dictionary, optimizer: torch.optim.Optimizer, state: dict,
                    tensors: dict[str, torch.Tensor]) -> None:
    """Everything needed to continue bit-exactly; the JSON (written last) marks the checkpoint complete."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {f"param.{k}": v for k, v in dictionary.state_dict().items()}
    names = {id(p): n for n, p in dictionary.named_parameters()}
    steps = {}
    for param, slot in optimizer.state.items():
        name = names[id(param)]
        out[f"adam.{name}.exp_avg"] = slot["exp_avg"]
        out[f"adam.{name}.exp_avg_sq"] = slot["exp_avg_sq"]
        steps[name] = float(slot["step"])
    out.update({f"state.{k}": v for k, v in tensors.items()})
    write_safetensors(directory / TENSORS_FILE, {k: v.detach().contiguous().cpu() for k, v in out.items()})
    atomic_write_json(directory / STATE_FILE, {**state, "adam_steps": steps})


def load_checkpoint(directory: Path, dictionary, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Restore into `dictionary` and `optimizer`; returns (trainer state, extra tensors)."""
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        tensors = load_file(directory / TENSORS_FILE)
    except (OSError, json.JSONDecodeError, Exception) as err:
        raise MechscopeError(f"checkpoint in {directory} is unreadable ({err.__class__.__name__}: {err}); "
                             "delete it to start over") from err
    device = next(dictionary.parameters()).device
    params = {k.removeprefix("param."): v for k, v in tensors.items() if k.startswith("param.")}
    try:
        dictionary.load_state_dict(params)
    except RuntimeError as err:
        raise MechscopeError(f"checkpoint in {directory} does not fit this dictionary: {err}") from err
    for name, param in dictionary.named_parameters():
        if name in state["adam_steps"]:  # moments in their parameter's memory layout, as fused Adam reads them
            optimizer.state[param] = {
                "step": torch.tensor(state["adam_steps"][name]),
                "exp_avg": torch.empty_like(param).copy_(tensors[f"adam.{name}.exp_avg"]),
                "exp_avg_sq": torch.empty_like(param).copy_(tensors[f"adam.{name}.exp_avg_sq"])}
    extra = {k.removeprefix("state."): v.to(device) for k, v in tensors.items() if k.startswith("state.")}
    return state, extra
