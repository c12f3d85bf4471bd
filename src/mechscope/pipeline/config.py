"""A pipeline config: TOML with an optional `[pipeline]` table and an ordered `[[stage]]` list, each stage parsed
into its kind's dataclass. Every error names the key path and the expected type before anything runs."""

from __future__ import annotations

import hashlib
import json
import tomllib
import types
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path

from mechscope.errors import MechscopeError, PipelineError

STAGE_KEYS = ("name", "kind", "title")  # keys every stage takes besides its kind's own


def stage_input(*kinds: str, default: str = "") -> Field:
    """A config field naming an earlier stage whose artefacts this stage reads (of one of `kinds`, if given)."""
    return field(default=default, metadata={"stage_input": kinds})


def input_fields(section) -> dict[str, str]:
    """field name -> the stage it names, for a stage section's non-empty input fields."""
    return {f.name: getattr(section, f.name) for f in fields(section)
            if "stage_input" in f.metadata and getattr(section, f.name)}


@dataclass
class PipelineSettings:
    """The `[pipeline]` table: what the run is, and where it runs."""

    name: str = ""
    description: str = ""
    device: str = "cpu"  # every model a stage loads goes here ("auto": CUDA, then MPS, then CPU)
    purpose: str = ""  # the intended purpose of the system examined (the report's Article 13(3)(b)(i))
    provider: str = ""  # who provides it, with a contact (Article 13(3)(a))


@dataclass
class StageSpec:
    """One `[[stage]]` entry: its name, kind, printed title and its kind's config section."""

    name: str
    kind: str
    title: str
    section: object

    def inputs(self) -> dict[str, str]:
        return input_fields(self.section)


@dataclass
class PipelineConfig:
    """A parsed pipeline: settings, stages in run order, the raw TOML and where it came from."""

    settings: PipelineSettings
    stages: list[StageSpec]
    raw: dict
    source: str = ""

    @property
    def sha256(self) -> str:
        return config_hash(self.raw)

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)


def config_hash(obj) -> str:
    """sha256 of an object's canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) if not typing.get_args(hint) else str(hint).replace("typing.", "")


def _coerce(value, hint, path: str):
    """`value` checked against the field type `hint` (int, float, str, bool, list[...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, path)
            except PipelineError:
                continue
        raise PipelineError(f"{path}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise PipelineError(f"{path}: expected a list ({_type_name(hint)}), got {type(value).__name__} {value!r}")
        item = args[0] if args else typing.Any
        items = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is typing.Any:
        return value
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise PipelineError(f"{path}: expected a table ({hint.__name__}), got {type(value).__name__} {value!r}")
        return parse_section(hint, value, path)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool) or hint in (int, float) and isinstance(value, bool) \
            or not isinstance(value, hint):
        raise PipelineError(f"{path}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    return value


def parse_section(config_type, table: dict, path: str):
    """`table` as an instance of the dataclass `config_type`; unknown keys and wrong types are named by path."""
    hints = typing.get_type_hints(config_type)
    known = {f.name: f for f in fields(config_type)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise PipelineError(f"{path}.{unknown[0]}: unknown key; {config_type.__name__} takes "
                            f"{', '.join(sorted(known)) or 'no keys'}")
    missing = [n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING
               and n not in table]
    if missing:
        raise PipelineError(f"{path}.{missing[0]}: required key ({_type_name(hints[missing[0]])}) is missing")
    values = {key: _coerce(value, hints[key], f"{path}.{key}") for key, value in table.items()}
    try:
        return config_type(**values)
    except (ValueError, TypeError, MechscopeError) as err:  # a config's own __post_init__ check
        raise PipelineError(f"{path}: {err}") from err


def _stage(entry, index: int, registry: dict, seen: dict[str, str]) -> StageSpec:
    if not isinstance(entry, dict):
        raise PipelineError(f"stage[{index}]: expected a table ([[stage]]), got {type(entry).__name__}")
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not name or "/" in name:
        raise PipelineError(f"stage[{index}].name: expected a non-empty str without '/', got {name!r}")
    path = f"stages.{name}"
    if name in seen:
        raise PipelineError(f"{path}: a stage of that name comes earlier; stage names are unique")
    if kind not in registry:
        raise PipelineError(f"{path}.kind: expected one of {', '.join(sorted(registry))}, got {kind!r}")
    title = _coerce(entry.get("title", ""), str, f"{path}.title")
    section = parse_section(registry[kind].config, {k: v for k, v in entry.items() if k not in STAGE_KEYS}, path)
    for key, target in input_fields(section).items():
        wanted = next(f for f in fields(section) if f.name == key).metadata["stage_input"]
        if target not in seen:
            raise PipelineError(f"{path}.{key}: expected the name of an earlier stage"
                                f"{' of kind ' + ' or '.join(wanted) if wanted else ''}, got {target!r}; "
                                f"earlier stages: {', '.join(seen) or 'none'}")
        if wanted and seen[target] not in wanted:
            raise PipelineError(f"{path}.{key}: expected a stage of kind {' or '.join(wanted)}, got {target!r} "
                                f"of kind {seen[target]!r}")
    return StageSpec(name, kind, title, section)


def parse_config(raw: dict, source: str = "", registry: dict | None = None) -> PipelineConfig:
    """Check and parse a pipeline config dict (a loaded TOML file) against the stage registry."""
    from mechscope.pipeline.stages import STAGES

    registry = STAGES if registry is None else registry
    unknown = sorted(set(raw) - {"pipeline", "stage"})
    if unknown:
        raise PipelineError(f"{unknown[0]}: unknown top-level key; a pipeline config holds [pipeline] and "
                            f"[[stage]] tables")
    settings = parse_section(PipelineSettings, raw.get("pipeline", {}), "pipeline")
    entries = raw.get("stage")
    if not isinstance(entries, list) or not entries:
        raise PipelineError("stage: expected a non-empty list of [[stage]] tables")
    stages, seen = [], {}
    for index, entry in enumerate(entries):
        stages.append(_stage(entry, index, registry, seen))
        seen[stages[-1].name] = stages[-1].kind
    return PipelineConfig(settings, stages, raw, source)


def shipped_configs() -> dict[str, Path]:
    """name -> path of the configs shipped with mechscope (`mechscope run demo`)."""
    folder = resources.files("mechscope.pipeline") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def load_config(source: str | Path, registry: dict | None = None) -> PipelineConfig:
    """Parse a TOML file, or a shipped config by name ("demo", "jailbreak-monitor")."""
    path = Path(source)
    if not path.is_file():
        shipped = shipped_configs()
        if str(source) not in shipped:
            raise PipelineError(f"expected a TOML file or a shipped config ({', '.join(sorted(shipped))}), "
                                f"got {str(source)!r}")
        path = shipped[str(source)]
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise PipelineError(f"{path}: not valid TOML: {err}") from err
    return parse_config(raw, str(path), registry)


def section_dict(spec: StageSpec) -> dict:
    """A stage's identity for hashing: its kind and every field of its section (defaults included)."""
    return {"kind": spec.kind, **asdict(spec.section)}
