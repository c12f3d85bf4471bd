"""Dictionaries: training-time and held-out metrics (FVU, L0, dead fraction, CE/KL splice scores) and the
Pareto plot of L0 against FVU and CE score drawn from the same eval.json files."""

from __future__ import annotations

from pathlib import Path

from mechscope.report.content import Figure, Section
from mechscope.report.evidence import Evidence, RunEvidence
from mechscope.report.sections import artefact_link

DICTIONARY_KINDS = ("mechscope.dictionary", "mechscope.clt", "mechscope.transcoder_set")
TRAINED = ("fvu", "l0", "dead_fraction")
HELD_OUT = ("fvu", "l0", "dead_fraction")
SPLICE = ("ce_score_zero", "kl_score_zero", "ce_spliced", "ce_clean")


def dictionaries_section(evidence: RunEvidence, figures: Path) -> Section:
    section = Section("Dictionaries")
    trained = evidence.of(*DICTIONARY_KINDS)
    evals = {_evaluated(e, evidence): e for e in evidence.of("mechscope.eval")}
    if not trained and not evals:
        return section.not_assessed("Dictionaries", "the run trained, loaded or evaluated no dictionary")
    section.say("Training metrics are the trainer's last logged values on training activations; held-out "
                "metrics come from `mechscope eval` on text the dictionary was not trained on. CE/KL scores: "
                "1 = splicing the dictionary in loses nothing, 0 = as bad as zero-ablating the hook.")
    rows = []
    for item in sorted(trained, key=lambda e: str(e.directory)) + [e for d, e in evals.items()
                                                                     if d not in {t.directory for t in trained}]:
        manifest, result = item.manifest, evals.get(item.directory)
        held = result.record if result is not None else None
        rows.append([artefact_link(item, evidence.root), manifest.fact("config", "architecture"),
                     manifest.fact("config", "d_sae"), manifest.fact("config", "k"),
                     manifest.fact("config", "hook_name") or manifest.fact("hook"),
                     *[manifest.fact("final", key) for key in TRAINED],
                     *[held.fact(key) if held else None for key in HELD_OUT],
                     *[held.fact("downstream", key) if held else None for key in SPLICE[:2]]])
    section.table(["dictionary", "architecture", "latents", "k", "hook", "train FVU", "train L0", "train dead",
                   "held-out FVU", "held-out L0", "held-out dead", "CE score", "KL score"], rows)
    missing = [str(item.directory.relative_to(evidence.root)) for item in trained if item.directory not in evals]
    if missing:
        section.not_assessed(f"Held-out metrics of {', '.join(missing)}", "no eval.json beside the dictionary")
    _transcoder_rows(section, evidence)
    if evals:
        from mechscope.evaluation.pareto import plot_png

        figures.mkdir(parents=True, exist_ok=True)
        path = plot_png([e.record.data for e in evals.values()], figures / "pareto.png")
        section.blocks.append(Figure(path, "L0 against held-out FVU (and CE score where measured), one series "
                                           "per architecture, drawn from the eval.json files above."))
    else:
        section.not_assessed("Pareto plot", "no dictionary was evaluated on held-out text")
    return section


def _evaluated(result: Evidence, evidence: RunEvidence) -> Path:
    """The dictionary directory an eval.json judged: its own folder, else the run's dictionary at the path it
    records (resolved, or by folder name when the run directory has moved since)."""
    named = Path(str(result.record.get("dictionary") or ""))
    dictionaries = [item.directory for item in evidence.of(*DICTIONARY_KINDS)]
    for rule in (lambda d: d == result.directory, lambda d: d.resolve() == named.resolve(),
                 lambda d: d.name == named.name):
        found = [d for d in dictionaries if rule(d)]
        if len(found) == 1:
            return found[0]
    return result.directory


def _transcoder_rows(section: Section, evidence: RunEvidence) -> None:
    for item in evidence.of("mechscope.transcoder_eval"):
        record = item.record
        section.say("Transcoders ", artefact_link(item, evidence.root), " replacing every MLP at once: CE score ",
                    record.fact("downstream", "ce_score_zero"), ", KL score ", record.fact("downstream", "kl_score_zero"),
                    ", next-token agreement ", record.fact("downstream", "next_token_agreement"), ".")
        section.table(["layer", "FVU", "L0", "dead fraction"], [
            [record.fact("layers", i), record.fact("fvu", i), record.fact("l0", i), record.fact("dead_fraction", i)]
            for i in range(len(record.get("layers")))])
