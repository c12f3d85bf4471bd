"""Steering stages: the refusal direction (Arditi et al. 2024) with its held-out check, a monitor calibrated on
harmful vs harmless requests (AUROC, TPR at 1% FPR), and the conditional jailbreak defence with its attack
success rates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome
from mechscope.steering import RefusalConfig
from mechscope.steering.calibration import CalibrationConfig
from mechscope.steering.defence import DefenceConfig


REQUESTS = ("refusal", "safety", "organism")


def _check_requests(name: str) -> None:
    if name not in REQUESTS:
        raise ValueError(f"requests: expected one of {', '.join(REQUESTS)}, got {name!r}")


def _requests(name: str, ctx: StageContext, model: str):
    """Harmful/harmless request sets (anything with `instructions(harmful, split)`): "refusal" (the refusal task),
    "safety" (the safety request set) or "organism" (the task of the organism `model` names)."""
    from mechscope.tasks import Refusal, SafetyRequests

    if name == "organism":
        return ctx.models.organism(model).task
    return {"refusal": Refusal, "safety": SafetyRequests}[name]()


@dataclass
class RefusalStageConfig:
    """Select the refusal direction of `model` and check it on held-out requests: plain, ablated, added."""

    model: str = "organism:refusal:small"
    requests: str = "refusal"  # refusal, safety or organism (the organism's own request task)
    n_train: int = 128
    n_val: int = 32
    selection: RefusalConfig = field(default_factory=lambda: RefusalConfig(prune_layer_fraction=0.0,
                                                                           ablation="affine"))
    check: bool = True  # the organism's held-out refusal check with the direction ablated and added

    def __post_init__(self):
        _check_requests(self.requests)


def refusal(cfg: RefusalStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope import steering

    model = ctx.models.model(cfg.model)
    sets = steering.refusal_prompt_sets(cfg.n_train, cfg.n_val, task=_requests(cfg.requests, ctx, cfg.model))
    found = steering.select_refusal_direction(model, sets["harmful"], sets["harmless"], sets["harmful_val"],
                                              sets["harmless_val"], config=cfg.selection)
    selected = found.vector.metrics["selected"]
    ctx.say(f"{len(found.table)} candidates scored; selected layer {found.layer}: refusal score "
            f"{found.baseline['harmful_refusal_score']:.2f} -> {selected['refusal_score']:.2f} ablated, harmless "
            f"{found.baseline['harmless_refusal_score']:.2f} -> {selected['steering_score']:.2f} added")
    metrics = {"layer": found.layer, "position": found.position, "ablated_refusal_score": selected["refusal_score"],
               "added_harmless_score": selected["steering_score"]}
    if cfg.check:
        organism = ctx.models.organism(cfg.model)
        for what, edits in (("plain", []), ("ablated", found.ablate(model)), ("added", found.add())):
            with steering.steer(model, edits):
                check = organism.check()
            metrics[f"{what}.harmful_refused"] = check.harmful_refusal_rate
            metrics[f"{what}.harmless_refused"] = check.harmless_refusal_rate
            ctx.say(f"{what:8s} held-out refusals: harmful {check.harmful_refusal_rate:.0%}, "
                    f"harmless {check.harmless_refusal_rate:.0%}")
    return StageOutcome({"refusal direction": found.vector.save(ctx.dir / "refusal")}, metrics)


@dataclass
class MonitorStageConfig:
    """A projection monitor calibrated on held-out harmful (positive) vs harmless requests: the refusal stage's
    direction at its hook, or the difference in means of the train requests at `layer`'s residual stream."""

    model: str = "organism:refusal-smollm2"
    refusal: str = stage_input("refusal")
    layer: int = -1  # without a refusal stage: blocks.{layer}.hook_resid_post; -1: the middle layer
    requests: str = "safety"  # refusal, safety or organism
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def __post_init__(self):
        _check_requests(self.requests)


def monitor(cfg: MonitorStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.steering import Monitor, SteeringVector, projection
    from mechscope.steering.calibration import calibrate_monitor, mean_difference
    from mechscope.steering.exchange import write_control_vector

    model = ctx.models.model(cfg.model)
    requests = _requests(cfg.requests, ctx, cfg.model)
    if cfg.refusal:
        vector = SteeringVector.load(ctx.artefact(cfg.refusal, "refusal direction")).check(model)
        layer = vector.layers[0]
        hook, direction = vector.hook_name(layer), vector.direction(layer)
    else:
        layer = cfg.layer if cfg.layer >= 0 else model.n_layers // 2
        hook = f"blocks.{layer}.hook_resid_post"
        direction = mean_difference(model, hook, requests.instructions(True, "train"),
                                    requests.instructions(False, "train"), cfg.calibration)
    result = calibrate_monitor(model, Monitor(hook, projection(direction)), requests.instructions(True, "test"),
                               requests.instructions(False, "test"), cfg.calibration)
    ctx.say(f"monitor at {hook} on {result.n_positive} held-out harmful / {result.n_negative} harmless requests: "
            f"AUROC {result.auroc:.3f}, TPR {result.tpr_at_target_fpr:.3f} at {result.target_fpr:.0%} FPR; "
            f"threshold {result.threshold:.3f} ({result.rule}): TPR {result.tpr:.3f}, FPR {result.fpr:.3f}")
    saved = {"layer": layer, "hook": hook, "score": "projection on the unit direction", "threshold": result.threshold,
             "calibration": result.to_dict(), "config": asdict(cfg.calibration)}
    path = write_control_vector(ctx.dir / "monitor.gguf", {layer: direction}, model.info.model_type,
                                {"monitor": saved, "model": model.describe()})
    return StageOutcome({"monitor": path}, {"auroc": result.auroc, "tpr_at_1pct_fpr": result.tpr_at_target_fpr,
                                            "threshold": result.threshold, "tpr": result.tpr, "fpr": result.fpr,
                                            "n_positive": result.n_positive, "n_negative": result.n_negative})


@dataclass
class DefenceStageConfig:
    """The conditional refusal defence calibrated and judged against jailbreak wrappers of held-out requests."""

    refusal: str = stage_input("refusal", default="refusal")
    model: str = "organism:refusal-smollm2"
    requests: str = "safety"
    defence: DefenceConfig = field(default_factory=DefenceConfig)

    def __post_init__(self):
        _check_requests(self.requests)


def defence(cfg: DefenceStageConfig, ctx: StageContext) -> StageOutcome:
    import json

    from mechscope.steering import SteeringVector
    from mechscope.steering.defence import jailbreak_defence

    model = ctx.models.model(cfg.model)
    vector = SteeringVector.load(ctx.artefact(cfg.refusal, "refusal direction")).check(model)
    report = jailbreak_defence(model, vector, _requests(cfg.requests, ctx, cfg.model), cfg.defence)
    path = ctx.dir / "defence.json"
    path.write_text(json.dumps(asdict(report), indent=1))
    metrics = {"threshold": report.threshold, "calibration_f1": report.f1}
    for run, sides in report.runs.items():
        asr = report.attack_success(run)
        harmless = sides["harmless"]
        metrics[f"{run}.attack_success"] = sum(asr.values()) / len(asr)
        metrics[f"{run}.harmless_refused"] = sum(harmless.values()) / len(harmless)
        ctx.say(f"{run:16s} attack success " + ", ".join(f"{k} {v:.0%}" for k, v in asr.items()) +
                "; harmless refused " + ", ".join(f"{k} {v:.0%}" for k, v in harmless.items()))
    return StageOutcome({"defence report": path}, metrics)
