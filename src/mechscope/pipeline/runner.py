"""Run a pipeline's stages in order into one directory, recording each in DIR/run.json; skip stages whose config
and artefacts are unchanged, redo (or, for resumable kinds, resume) stages an earlier process left unfinished."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mechscope.data.atomic import atomic_file
from mechscope.errors import PipelineError
from mechscope.manifest import build_manifest, input_record, write_manifest
from mechscope.pipeline.config import PipelineConfig, StageSpec, config_hash, load_config, section_dict
from mechscope.pipeline.context import ModelPool, StageContext, StageOutcome

RUN_FILE = "run.json"
RUN_FORMAT = "mechscope.run"
STAGE_FORMAT = "mechscope.pipeline_stage"
FINISHED = ("done", "skipped")


@dataclass
class RunResult:
    """Where the run went, each stage's record (as in run.json) and which stages ran or were skipped."""

    out: Path
    stages: dict[str, dict]
    ran: list[str]
    skipped: list[str]
    seconds: float


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _relative(path: Path | str, root: Path) -> str:
    path = Path(path).absolute()
    return str(path.relative_to(root.absolute())) if path.is_relative_to(root.absolute()) else str(path)


def artefact_sha256(path: Path) -> str | None:
    """A file's sha256; a directory's from its manifest.json (else from every file below it); None if absent."""
    return input_record(path)["sha256"] if path.exists() else None


def stage_hash(spec: StageSpec, records: dict[str, dict], earlier: list[str] = ()) -> str:
    """sha256 of the stage's own section plus the config hashes and artefact checksums of the stages it reads,
    and of every finished stage named in `earlier` (what a stage over the whole run, such as the report, reads)."""
    reads = {**spec.inputs(), **{f"run:{name}": name for name in earlier if name in records}}
    inputs = {key: {"config_sha256": records[stage]["config_sha256"],
                    "artefact_sha256": records[stage].get("artefact_sha256", {})}
              for key, stage in reads.items()}
    return config_hash({"section": section_dict(spec), "inputs": inputs})


def up_to_date(record: dict | None, sha: str, run_dir: Path) -> bool:
    """A finished record of the same config whose artefacts are all present with the checksums recorded."""
    if not record or record["status"] not in FINISHED or record["config_sha256"] != sha:
        return False
    recorded = record.get("artefact_sha256", {})
    return all(artefact_sha256(run_dir / path) == recorded.get(label) for label, path in record["artefacts"].items())


def load_state(out: Path) -> dict:
    """run.json's stage records (empty when the directory holds no run)."""
    path = out / RUN_FILE
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    if state.get("format") != RUN_FORMAT:
        raise PipelineError(f"{path}: expected format {RUN_FORMAT!r}, got {state.get('format')!r}")
    return state["stages"]


class _Run:
    """One invocation: the config, the directory and the stage records written to run.json after every change."""

    def __init__(self, config: PipelineConfig, out: Path):
        self.config, self.out = config, out
        self.previous = load_state(out)
        self.records = {s.name: self.previous[s.name] for s in config.stages if s.name in self.previous}

    def save(self) -> None:
        ordered = {s.name: self.records[s.name] for s in self.config.stages if s.name in self.records}
        state = {"format": RUN_FORMAT, "format_version": 1, "config_file": self.config.source,
                 "config": self.config.raw, "config_sha256": self.config.sha256, "stages": ordered}
        with atomic_file(self.out / RUN_FILE) as handle:  # not sorted: stages stay in run order
            handle.write((json.dumps(state, indent=2, default=str) + "\n").encode())


def _prepare_dir(directory: Path, previous: dict | None, sha: str, resumable: bool) -> bool:
    """Empty the stage directory unless a resumable kind left it unfinished with the same config; True if resuming."""
    resume = bool(resumable and previous and previous["status"] in ("running", "failed")
                  and previous["config_sha256"] == sha and directory.is_dir())
    if not resume:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    return resume


def _finish(run: _Run, spec: StageSpec, record: dict, outcome: StageOutcome, directory: Path) -> None:
    artefacts = {label: _relative(path, run.out) for label, path in outcome.artefacts.items()}
    missing = [label for label, path in artefacts.items() if not (run.out / path).exists()]
    if missing:
        raise PipelineError(f"stages.{spec.name}: kind {spec.kind!r} reported artefacts that do not exist: "
                            f"{', '.join(missing)}")
    write_manifest(directory, build_manifest(STAGE_FORMAT, config=section_dict(spec), stage=spec.name,
                                             artefacts=artefacts, metrics=outcome.metrics,
                                             inputs={k: {"stage": v} for k, v in spec.inputs().items()}))
    artefacts["stage manifest"] = _relative(directory / "manifest.json", run.out)
    record.update(status="done", finished=_now(), seconds=round(time.time() - record.pop("_t0"), 2),
                  artefacts=artefacts, metrics=outcome.metrics,
                  artefact_sha256={label: artefact_sha256(run.out / path) for label, path in artefacts.items()})


def _run_stage(run: _Run, spec: StageSpec, sha: str, registry: dict, models: ModelPool) -> None:
    kind = registry[spec.kind]
    directory = run.out / spec.name
    resumed = _prepare_dir(directory, run.previous.get(spec.name), sha, kind.resumable)
    if resumed:
        print("  resuming where the interrupted run stopped", flush=True)
    record = {"kind": spec.kind, "status": "running", "config_sha256": sha, "started": _now(), "finished": None,
              "seconds": 0.0, "artefacts": {}, "metrics": {}, "error": None}
    run.records[spec.name] = record
    run.save()
    record["_t0"] = time.time()
    try:
        outcome = kind.run(spec.section, StageContext(spec.name, directory, run.out, run.records, models))
        _finish(run, spec, record, outcome, directory)
    except BaseException as err:
        record.update(status="failed", finished=_now(), seconds=round(time.time() - record.pop("_t0"), 2),
                      error=f"{type(err).__name__}: {err}")
        raise
    finally:
        run.save()


def run_pipeline(config: PipelineConfig | str | Path, out: str | Path, only: list[str] | tuple = (),
                 force: list[str] | tuple = (), registry: dict | None = None) -> RunResult:
    """Run `config` (a PipelineConfig, a TOML path or a shipped name) into `out`; `only` runs just the named
    stages (their inputs must have run before), `force` reruns the named ones even when up to date."""
    from mechscope.pipeline.stages import STAGES

    registry = STAGES if registry is None else registry
    if not isinstance(config, PipelineConfig):
        config = load_config(config, registry)
    names = [s.name for s in config.stages]
    for flag, given in (("--only", only), ("--force", force)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise PipelineError(f"{flag} {unknown[0]}: expected a stage name of this config ({', '.join(names)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run, models = _Run(config, out), ModelPool(config.settings.device)
    started, ran, skipped = time.time(), [], []
    for number, spec in enumerate(config.stages, 1):
        if only and spec.name not in only:
            continue
        print(f"\n== [{number}/{len(names)}] {spec.title or spec.name} ({spec.name}: {spec.kind})", flush=True)
        absent = [stage for stage in spec.inputs().values() if run.records.get(stage, {}).get("status") not in FINISHED]
        if absent:
            raise PipelineError(f"stages.{spec.name} reads stage {absent[0]!r}, which has not finished in {out}; "
                                f"run it first (drop --only or add it)")
        sha = stage_hash(spec, run.records, names[:number - 1] if registry[spec.kind].reads_run else ())
        previous = run.records.get(spec.name)
        if spec.name not in force and up_to_date(previous, sha, out):
            previous["status"] = "skipped"
            run.save()
            skipped.append(spec.name)
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in list(previous["metrics"].items())[:6])
            print(f"  skipped (up to date){': ' + shown if shown else ''}", flush=True)
            continue
        _run_stage(run, spec, sha, registry, models)
        ran.append(spec.name)
        print(f"  ({run.records[spec.name]['seconds']:.1f}s)", flush=True)
    return RunResult(out, run.records, ran, skipped, round(time.time() - started, 1))
