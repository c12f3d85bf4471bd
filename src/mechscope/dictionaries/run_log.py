"""Where a dictionary's training metrics go: a JSONL file always, Weights & Biases when asked for."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _wandb_run(project: str, name: str, config: dict):
    try:
        import wandb
    except ImportError:
        print(f"mechscope: W&B project {project!r} asked for but wandb is not installed (pip install wandb); "
              "logging to training_log.jsonl only", file=sys.stderr)
        return None
    return wandb.init(project=project, name=name, config=config, reinit=True)


class RunLog:
    """training_log.jsonl of one run (lines from before `start_step` kept on resume) plus an optional W&B run."""

    def __init__(self, directory: Path, start_step: int, wandb_project: str | None = None, name: str = "",
                 config: dict | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "training_log.jsonl"
        kept = [line for line in (path.read_text().splitlines() if path.exists() else [])
                if json.loads(line)["step"] < start_step]
        path.write_text("".join(line + "\n" for line in kept))
        self.handle = path.open("a")
        self.wandb = _wandb_run(wandb_project, name, config or {}) if wandb_project else None

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.wandb is not None:
            self.wandb.log(record, step=record["step"])

    def close(self) -> None:
        self.handle.close()
        if self.wandb is not None:
            self.wandb.finish()
