"""Model diffing: two models (or one and its copy with a refusal stage's direction orthogonalised out of the
weights) compared by the activation-difference lens, per-token KL and, optionally, a crosscoder's latent classes."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.diffing import DiffConfig
from mechscope.errors import PipelineError
from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome


@dataclass
class DiffStageConfig:
    """Model A against model B on `texts`: "task" (A's organism task texts) or "requests" (safety requests)."""

    model: str = "organism:refusal:small"
    other: str = ""  # model B; "": model A with the `refusal` stage's direction orthogonalised out
    refusal: str = stage_input("refusal")
    texts: str = "task"
    n_texts: int = 1200  # all but report.texts go to the paired harvest, the rest to the lens and KL
    hook: str = ""  # "": the last layer's residual stream
    pair_tokens: int = 24_000
    context: int = 32
    crosscoder_tokens: int = 120_000  # 0: no crosscoder
    expansion: int = 16  # crosscoder latents = expansion x d_model
    k: int = 8
    report: DiffConfig = field(default_factory=DiffConfig)

    def __post_init__(self):
        if self.texts not in ("task", "requests"):
            raise ValueError(f"texts: expected 'task' or 'requests', got {self.texts!r}")


def _texts(cfg: DiffStageConfig, ctx: StageContext) -> list[str]:
    if cfg.texts == "task":
        return ctx.models.texts("task", cfg.model, cfg.n_texts, seed=1)
    from mechscope.tasks import SafetyRequests

    requests = SafetyRequests()
    texts = [t for pair in zip(requests.instructions(True, "train"), requests.instructions(False, "train"))
             for t in pair]
    return texts[:cfg.n_texts]


def diff(cfg: DiffStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.data.paired import PairedActivations, harvest_pair
    from mechscope.diffing import classify_latents, diff_models
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, crosscoder_source, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.steering import SteeringVector, orthogonalize

    base = ctx.models.model(cfg.model)
    if cfg.other:
        other = ctx.models.model(cfg.other)
    elif cfg.refusal:
        vector = SteeringVector.load(ctx.artefact(cfg.refusal, "refusal direction"))
        other = orthogonalize(base, vector.direction(vector.metrics["selected"]["layer"]))
    else:
        raise PipelineError(f"stages.{ctx.name}: expected `other` (a model) or `refusal` (a refusal stage)")
    hook = cfg.hook or f"blocks.{base.n_layers - 1}.hook_resid_post"
    texts = _texts(cfg, ctx)
    held_out = cfg.report.texts
    report_cfg = DiffConfig(**{**cfg.report.__dict__, "hook": hook})
    artefacts, crosscoder, pair, classes = {}, None, None, {}
    if cfg.crosscoder_tokens:
        pair_dir = harvest_pair(base, other, texts[:-held_out], hook, tokens=cfg.pair_tokens, out=ctx.dir / "pair",
                                context=cfg.context)
        d_model = base.info.d_model
        [directory] = train(crosscoder_source(pair_dir),
                            DictionaryConfig(2 * d_model, cfg.expansion * d_model, "crosscoder", k=cfg.k),
                            ctx.dir / "crosscoder", TrainConfig(tokens=cfg.crosscoder_tokens, batch_size=512,
                                                                log_every=1000, device=ctx.models.device))
        crosscoder, pair = load_dictionary(directory), PairedActivations(pair_dir)
        classes = classify_latents(crosscoder).counts()
        artefacts["crosscoder"] = directory
    report = diff_models(base, other, texts[-held_out:], ctx.dir / "diff", report_cfg, crosscoder=crosscoder,
                         pair=pair)
    ctx.say(f"KL({cfg.model} || {cfg.other or 'orthogonalised copy'}) per token: mean {report['kl']['mean']:.4f}" +
            ("; crosscoder latents: " + ", ".join(f"{k} {v}" for k, v in classes.items()) if classes else ""))
    artefacts["model diff report"] = ctx.dir / "diff" / "report.md"
    return StageOutcome(artefacts, {"kl_mean": report["kl"]["mean"], **{f"latents.{k}": v for k, v in classes.items()}})
