"""Dictionary stages: train any variant from a harvested cache (or load a dictionary file in any supported
format), and evaluate dictionaries (FVU, CE/KL splice) with their Pareto plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mechscope.errors import PipelineError
from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome


@dataclass
class TrainStageConfig:
    """Dictionaries trained from one pass over a harvest stage's cache, or one loaded from `load`."""

    activations: str = stage_input("harvest")
    load: str = ""  # a dictionary file/directory in any supported format, used instead of training
    hook: str = ""  # "" : the cache's first hook
    variants: list[str] = field(default_factory=lambda: ["topk"])  # topk, batchtopk, relu, jumprelu, matryoshka...
    expansion: int = 4  # d_sae = expansion x d_in
    k: int = 32
    tokens: int = 0  # training tokens; 0: four passes over the cache
    batch_size: int = 1024
    lr: float | None = None
    log_every: int = 25
    checkpoint_every: int = 500
    seed: int = 0
    convert: list[str] = field(default_factory=list)  # copies of the first dictionary in these formats (sparsify...)


def _final(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text()).get("final", {})


def train(cfg: TrainStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.dictionaries.formats import convert, load_dictionary

    if cfg.load:
        directory = convert(cfg.load, ctx.dir / "loaded", to="saelens")
        ctx.say(f"loaded {cfg.load} into the SAELens layout: {directory}")
        return StageOutcome({directory.name: directory})
    if not cfg.activations:
        raise PipelineError(f"stages.{ctx.name}: expected `activations` (a harvest stage) or `load` (a file)")
    from mechscope.data import ActivationCache
    from mechscope.dictionaries import DictionaryConfig, TrainConfig
    from mechscope.dictionaries import train as train_dictionaries

    cache = ActivationCache(ctx.artefact(cfg.activations, "activations"))
    hook = cfg.hook or cache.hooks[0]
    d_in = cache.d(hook)
    configs = [DictionaryConfig(d_in, cfg.expansion * d_in, variant, k=cfg.k) for variant in cfg.variants]
    tokens = cfg.tokens or 4 * cache.info()["tokens"]
    dirs = train_dictionaries(cache, configs, ctx.dir / "runs",
                              TrainConfig(tokens=tokens, batch_size=cfg.batch_size, lr=cfg.lr, log_every=cfg.log_every,
                                          checkpoint_every=cfg.checkpoint_every, seed=cfg.seed,
                                          device=ctx.models.device), hook=hook)
    artefacts, metrics = {}, {}
    for directory in dirs:
        final = _final(directory)
        ctx.say(f"{directory.name:22s} FVU {final['fvu']:.3f}  L0 {final['l0']:.1f}  dead {final['dead_fraction']:.1%}")
        artefacts[directory.name] = directory
        metrics.update({f"{directory.name}.{key}": round(final[key], 4) for key in ("fvu", "l0", "dead_fraction")})
    codes = load_dictionary(dirs[0]).encode(cache.get(hook, range(min(2048, len(cache)))).float())
    ctx.say(f"reload + encode {codes.shape[0]} cached tokens: {(codes > 0).sum(-1).float().mean():.1f} active latents "
            "per token")
    for fmt in cfg.convert:
        artefacts[f"{dirs[0].name} ({fmt})"] = copy = convert(dirs[0], ctx.dir / f"{dirs[0].name}-as-{fmt}", to=fmt)
        ctx.say(f"converted to {fmt}'s format: {copy}")
    return StageOutcome(artefacts, metrics)


@dataclass
class EvaluateStageConfig:
    """Reconstruction and downstream (CE-loss / KL splice) scores of every dictionary a stage made; Pareto plot."""

    dictionary: str = stage_input("train")
    model: str = "smollm2"
    source: str = "sotu"
    tokens: int = 1024  # CE/KL splice: four forward passes per token (clean, spliced, zero, mean)
    context: int = 128
    batch_size: int = 8
    seed: int = 7


def evaluate(cfg: EvaluateStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.evaluation import evaluate as evaluate_dictionary
    from mechscope.evaluation.pareto import pareto
    from mechscope.manifest import build_manifest, input_record

    model = ctx.models.model(cfg.model)
    artefacts, metrics = {}, {}
    for label, directory in ctx.dictionaries(cfg.dictionary).items():
        result = evaluate_dictionary(model, directory, cfg.source, tokens=cfg.tokens, context=cfg.context,
                                     batch_size=cfg.batch_size, seed=cfg.seed, save=False)
        (ctx.dir / label).mkdir()
        artefacts[f"{label} evaluation"] = result.save(ctx.dir / label, build_manifest(
            "mechscope.eval", model=model, config=cfg, hook=result.hook,
            inputs={"dictionary": input_record(directory), "corpus": {"name": cfg.source}}))
        ds = result.downstream
        ctx.say(f"{label:22s} FVU {result.fvu:.3f}  L0 {result.l0:.1f}  CE clean {ds['ce_clean']:.3f} "
                f"spliced {ds['ce_spliced']:.3f} zero-abl {ds['ce_zero']:.3f} mean-abl {ds['ce_mean']:.3f}")
        ctx.say(f"{'':22s} CE-loss score {ds['ce_score_zero']:.3f} (vs zero) {ds['ce_score_mean']:.3f} (vs mean); "
                f"KL score {ds['kl_score_zero']:.3f} (vs zero) {ds['kl_score_mean']:.3f} (vs mean)")
        metrics.update({f"{label}.fvu": round(result.fvu, 4), f"{label}.l0": round(result.l0, 2),
                        f"{label}.ce_score_zero": round(ds["ce_score_zero"], 4),
                        f"{label}.kl_score_zero": round(ds["kl_score_zero"], 4)})
    plots = pareto(ctx.dir)
    return StageOutcome({**artefacts, "Pareto plot": plots["png"], "Pareto (interactive)": plots["html"]}, metrics)
