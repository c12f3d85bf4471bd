"""Feature stages: mine a dictionary's latents into a catalogue, label them (offline by default), write the
dashboard and the Neuronpedia export."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.autointerp import LabelConfig
from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome


@dataclass
class MineStageConfig:
    """Mine the first dictionary of a train stage over a harvest stage's cache into a searchable catalogue."""

    dictionary: str = stage_input("train")
    activations: str = stage_input("harvest")
    model: str = "smollm2"
    source: str = "pydocs"  # read when no `activations` stage is given
    tokens: int = 40_000


def mine(cfg: MineStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.features import mine as mine_latents

    model = ctx.models.model(cfg.model)
    dictionary = next(iter(ctx.dictionaries(cfg.dictionary).values()))
    source = ctx.artefact(cfg.activations, "activations") if cfg.activations else cfg.source
    mined = mine_latents(model, dictionary, source, ctx.dir / "features", tokens=cfg.tokens)
    ctx.say(f"{mined.tokens} tokens at {mined.tokens_per_second:,.0f} tokens/s: {mined.latents} latents, "
            f"{mined.dead} dead, {mined.rare} rare, {mined.examples} example contexts")
    return StageOutcome({"feature catalogue": ctx.dir / "features"},
                        {"latents": mined.latents, "dead": mined.dead, "rare": mined.rare,
                         "examples": mined.examples, "tokens_per_second": round(mined.tokens_per_second)})


@dataclass
class LabelStageConfig:
    """Label and score a mine stage's latents in its catalogue (labels are added to it; reruns keep earlier ones)."""

    features: str = stage_input("mine")
    label: LabelConfig = field(default_factory=lambda: LabelConfig(max_latents=48))


def label(cfg: LabelStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.autointerp import label_features
    from mechscope.features import Catalog

    catalog_dir = ctx.artefact(cfg.features, "feature catalogue")
    run = label_features(catalog_dir, cfg.label)
    metrics = {"explained": run.explained}
    for scorer, score in run.scores.items():
        metrics[f"{scorer}_auroc"], metrics[f"{scorer}_baseline"] = score["mean"], score["baseline_mean"]
        ctx.say(f"{run.explained} latents labelled; {scorer} AUROC {score['mean']:.3f} "
                f"(labels of other latents: {score['baseline_mean']:.3f})")
    with Catalog(catalog_dir) as catalog:
        for info in catalog.list(order_by="score", limit=3):
            ctx.say(f"latent {info.latent:5d}  {info.labels[-1].text:40s} AUROC {info.best_score:.2f}")
    return StageOutcome({"feature catalogue": catalog_dir}, metrics)


@dataclass
class DashboardStageConfig:
    """The offline dashboard of a catalogue (mine or label stage) and, optionally, its Neuronpedia export."""

    features: str = stage_input("mine", "label")
    top: int = 10  # top-activation contexts per latent page
    neuronpedia: bool = True


def dashboard(cfg: DashboardStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.features import Catalog, export_neuronpedia, write_dashboard

    catalog_dir = ctx.artefact(cfg.features, "feature catalogue")
    with Catalog(catalog_dir) as catalog:
        best = catalog.list(order_by="score", limit=1)
        hits = catalog.search(best[0].top_tokens[0]) if best and best[0].top_tokens else []
    written = write_dashboard(catalog_dir, ctx.dir / "dashboard", top=cfg.top)
    ctx.say(f"dashboard: {written.latents} latent pages, {written.gzip_bytes_per_latent / 1024:.1f} KB each "
            f"gzipped; a search finds {len(hits)} latent(s)")
    artefacts = {"feature dashboard": ctx.dir / "dashboard" / "index.html"}
    if cfg.neuronpedia:
        artefacts["Neuronpedia export"] = export_neuronpedia(catalog_dir, ctx.dir / "neuronpedia")
    return StageOutcome(artefacts, {"latent_pages": written.latents,
                                    "kb_per_latent_gzipped": round(written.gzip_bytes_per_latent / 1024, 2)})
