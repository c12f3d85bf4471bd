"""Public dictionaries by id: resolved in the release registry, fetched from the Hugging Face hub (or a local copy
given with `source`), converted once into the mechscope cache (SAELens layout + manifest.json), and checked
against the model they will read (hook, width)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mechscope.cache_dirs import build_once, cache_root
from mechscope.dictionaries.releases import Release, ReleaseError, find_release, width_count
from mechscope.errors import MechscopeError
from mechscope.hub import hub_reachable
from mechscope.manifest import build_manifest, input_record, write_manifest

FORMAT = "mechscope.public_dictionary"
_WHOLE_FOLDERS = ("transcoder_set", "clt")  # kept as published under files/ and read by load_transcoders


class ReleaseUnavailableError(MechscopeError):
    """A public dictionary that is neither cached nor reachable: the message says what would be downloaded and
    how to point at a local copy."""


@dataclass(frozen=True)
class ReleaseEntry:
    """One dictionary of a release, named by an id."""

    id: str
    release: Release
    path: str  # the id after the release name
    groups: dict

    @property
    def folder(self) -> str:
        return self.release.folder.format(path=self.path, **self.groups)

    @property
    def kind(self) -> str:
        return self.release.layout(self.groups)[0]

    @property
    def hook(self) -> str:
        return self.release.hook.format(**self.groups)

    @property
    def width(self) -> int | None:
        """The width the id names (or the release's only one); None for a transcoder set."""
        width = self.groups.get("width") or (self.release.widths[0] if len(self.release.widths) == 1 else None)
        return width_count(width) if width and self.kind not in ("transcoder_set", "clt") else None

    @property
    def files(self) -> list[str]:
        """The entry's files in the repository."""
        names = self.release.layout(self.groups)[1]
        return [f"{self.folder}/{name}".strip("/") if name else self.folder for name in names]

    @property
    def cached(self) -> Path:
        return cache_root() / "dictionaries" / self.release.name / (self.path or "_all")

    def describe(self) -> dict:
        return {"id": self.id, "release": self.release.name, "model": self.release.model, "repo": self.release.repo,
                "kind": self.kind, "format": self.release.format, "files": self.files,
                "hook": self.hook or "from the folder's config", "width": self.width,
                "url": f"https://huggingface.co/{self.release.repo}/tree/main/{self.folder}".rstrip("/"),
                "cached": str(self.cached) if (self.cached / "manifest.json").exists() else None,
                "notes": self.release.notes}


def resolve_release(release_id: str) -> ReleaseEntry:
    """The registry entry an id names; ReleaseError naming the layout when it does not fit."""
    release, path = find_release(release_id)
    if not release.path and path:
        raise ReleaseError(f"{release.name} is loaded whole; give its name alone, not {release_id!r}")
    groups = release.match(path) if release.path else {}
    if "width" in groups and groups["width"] not in release.widths and release.layout(groups)[0] != "transcoder_set":
        raise ReleaseError(f"{release.name} publishes widths {', '.join(release.widths)}, not {groups['width']}")
    return ReleaseEntry(release_id, release, path, groups)


def pull_release(release_id: str, source: str | Path | None = None) -> Path:
    """The cached, converted directory of a public dictionary: built once from `source` (a local copy of the
    repository, of the entry's folder, or the file itself) or the hub; ReleaseUnavailableError offline."""
    entry = resolve_release(release_id)
    from mechscope.dictionaries.formats import FORMATS

    if entry.release.format not in FORMATS and entry.release.format != "circuit_tracer":
        raise ReleaseError(f"{entry.release.name}: {entry.release.notes or 'no converter for its files yet'}")
    return build_once(entry.cached, lambda tmp: _build(entry, _locate(entry, source), tmp), "manifest.json")


def load_release(release_id: str, model=None, source: str | Path | None = None, device: str = "cpu"):
    """A public dictionary as a Dictionary (a transcoder set as a TranscoderSet), pulled when needed; with
    `model`, checked to read a hook the model has at the width the model gives it."""
    entry = resolve_release(release_id)
    path = pull_release(release_id, source)
    if entry.kind in _WHOLE_FOLDERS:
        from mechscope.dictionaries.transcoders import load_transcoders

        return load_transcoders(path / "files", device)
    from mechscope.dictionaries.formats import load_dictionary

    dictionary = load_dictionary(path, "saelens", device)
    if model is not None and entry.kind != "crosscoder":
        from mechscope.dictionaries.binding import bind_dictionary

        bind_dictionary(model, dictionary)
    return dictionary


def _locate(entry: ReleaseEntry, source: str | Path | None) -> Path:
    """The entry's folder (or file) on this machine: in `source`, else downloaded from the hub."""
    if source is not None:
        source = Path(source)
        names = entry.release.layout(entry.groups)[1]
        for candidate in (source / entry.folder, source):
            if all((candidate / name if name else candidate).exists() for name in names):
                return candidate
        raise ReleaseUnavailableError(f"{source} holds neither {entry.folder}/ nor the files of {entry.id} "
                                      f"({', '.join(entry.files)})")
    if not hub_reachable():
        raise ReleaseUnavailableError(
            f"{entry.id} is not in the cache and the Hugging Face hub cannot be reached. Online this would "
            f"download {', '.join(entry.files) or 'the whole repository'} from {entry.release.repo} "
            f"(https://huggingface.co/{entry.release.repo}). To use a local copy, fetch those files elsewhere "
            f"and pass --from DIR (load_release(..., source=DIR)), DIR holding {entry.folder or 'the repository'}"
            f"{'/' if entry.release.files != ('',) else ''} or the files themselves")
    from huggingface_hub import snapshot_download

    patterns = [f"{entry.folder}/*", entry.folder] if entry.folder else None
    return Path(snapshot_download(entry.release.repo, allow_patterns=patterns)) / entry.folder


def _build(entry: ReleaseEntry, raw: Path, out: Path) -> None:
    """Convert `raw` into `out` (SAELens layout; a transcoder set is copied under files/) with its manifest."""
    if entry.kind in _WHOLE_FOLDERS:
        shutil.copytree(raw, out / "files")
        if entry.kind == "transcoder_set":
            localize_hf_uris(out / "files", raw)
        described = {}
    else:
        from mechscope.dictionaries.formats import FORMATS, save_dictionary

        dictionary = FORMATS[entry.release.format].load(raw)
        if entry.width is not None and dictionary.d_sae != entry.width:
            raise ReleaseError(f"{entry.id} names width {entry.width}, but {raw} holds {dictionary.d_sae} latents")
        dictionary.cfg.hook_name = dictionary.cfg.hook_name or entry.hook
        dictionary.cfg.model_name = dictionary.cfg.model_name or entry.release.model
        save_dictionary(dictionary, out)
        described = {"hook": dictionary.cfg.hook_name, "d_in": dictionary.d_in, "d_sae": dictionary.d_sae,
                     "architecture": dictionary.cfg.architecture}
    write_manifest(out, build_manifest(FORMAT, model={"name": entry.release.model},
                                       inputs={"source": input_record(raw)}, id=entry.id,
                                       release=entry.release.name, repo=entry.release.repo, folder=entry.folder,
                                       **described))


def localize_hf_uris(folder: Path, source: Path) -> None:
    """Rewrite a circuit-tracer config.yaml whose `transcoders` name `hf://OWNER/REPO/FILE[?revision=R]` URIs to
    local files under `folder`: each found in `source` (at FILE, OWNER/REPO/FILE or by its name), else downloaded
    from the hub; ReleaseUnavailableError listing every URI that could be neither."""
    from mechscope.dictionaries.formats import circuit_tracer

    config = circuit_tracer.read_config(folder, "transcoder_set")
    uris = [str(f) for f in config.get("transcoders") or []]
    if not any(uri.startswith("hf://") for uri in uris):
        return
    local, missing = [], []
    for layer, uri in enumerate(uris):
        if not uri.startswith("hf://"):
            local.append(uri)
            continue
        repo, file, revision = parse_hf_uri(uri)
        found = next((c for c in (source / file, source / repo / file, source / Path(file).name) if c.is_file()), None)
        if found is None and hub_reachable():
            from huggingface_hub import hf_hub_download

            found = Path(hf_hub_download(repo, file, revision=revision))
        if found is None:
            missing.append(uri)
            continue
        name = f"layer_{layer}{''.join(Path(file).suffixes)}"
        shutil.copyfile(found, folder / name)
        local.append(name)
    if missing:
        raise ReleaseUnavailableError(f"{folder.name}: config.yaml names {len(missing)} Hugging Face files that are "
                                      f"neither in {source} nor reachable (e.g. {missing[0]}); put them in the --from "
                                      "directory at their repository path (OWNER/REPO/FILE or FILE)")
    circuit_tracer.write_config(folder, {**config, "transcoders": local})


def parse_hf_uri(uri: str) -> tuple[str, str, str | None]:
    """`hf://OWNER/REPO/PATH?revision=R` -> ("OWNER/REPO", "PATH", "R" or None), as circuit-tracer writes them."""
    body, _, query = uri.removeprefix("hf://").partition("?")
    parts = body.split("/")
    if len(parts) < 3 or not all(parts):
        raise ReleaseError(f"{uri!r} is not an hf://OWNER/REPO/FILE URI")
    revision = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("revision")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision
